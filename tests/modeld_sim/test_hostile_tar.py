"""Hostile tar pushes (issue 20, item 2): nothing is written outside the staging directory, no mode or
special file is taken from the archive, and a malformed stream gets Go's ``archive/tar`` answer.

The real daemon checks member paths and link targets as text only (``archiveutil.SafeJoin`` /
``SafeLinkTarget``), so members that are symlinks made by the archive itself (``s -> .``, ``s/p -> ..``,
...) lead a later member ``s/p/q/r/FILE`` out of the data root: observed on v0.36.0, the file was
written into the data root's parent directory (docs/conformance/real-modeld.md, "Tar pushes"). The texts
for malformed streams were learned from Go 1.26's ``archive/tar`` reader and v0.36.0's ``ExtractTar``
(same document): the reader's error, wrapped as ``modelstore: write staged content: <error>``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import tarfile
from pathlib import Path

import pytest
from _hostile_support import call, served_sim, tree, umask

from modeld_sim.store import ModelStore, iter_bytes
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

ZERO = bytes(512)
STAGED = "modelstore: write staged content: "


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644, link: str = ""
) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, link
    info.size = len(data)
    return info.tobuf(format=tarfile.USTAR_FORMAT) + data + bytes(-len(data) % 512)


def _archive(*members: bytes) -> bytes:
    return b"".join(members) + ZERO + ZERO


CHAIN = _archive(
    _member("s", tarfile.SYMTYPE, link="."),
    _member("s/p", tarfile.SYMTYPE, link=".."),
    _member("s/p/q", tarfile.SYMTYPE, link=".."),
    _member("s/p/q/r", tarfile.SYMTYPE, link=".."),
    _member("s/p/q/r/ESCAPED", data=b"outside"),
    _member("openvino_model.xml", data=b"<xml/>"),
)


def _manifest(name: str, raw: bytes | None = None) -> pb.PushManifest:
    digest = hashlib.sha256(raw).hexdigest() if raw is not None else ""
    return pb.PushManifest(name=name, type="openvino", format="tar", digest=digest)


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore.for_data_root(str(tmp_path / "a" / "b" / "data"))


async def test_symlink_chain_stays_inside_the_model(store: ModelStore, tmp_path: Path) -> None:
    resp = await store.receive_model(_manifest("m", CHAIN), iter_bytes(CHAIN[:700], CHAIN[700:]))
    assert resp.bytes_written == len(CHAIN)
    model = Path(store.dir) / "m"
    # the member lands where its name says, below the model, through real directories
    assert (model / "s" / "p" / "q" / "r" / "ESCAPED").read_bytes() == b"outside"
    everything = tree(str(tmp_path))
    assert not [p for p, kind in everything.items() if kind.startswith("l")], everything  # no symlink made
    assert [p for p in everything if p.endswith("ESCAPED")] == ["a/b/data/models/m/s/p/q/r/ESCAPED"]
    assert store.resolve("m", "openvino") == str(model)


async def test_modes_are_dropped_and_special_members_skipped(store: ModelStore) -> None:
    raw = _archive(
        _member("openvino_model.xml", data=b"<xml/>", mode=0o4777),
        _member("bin/run", data=b"#!/bin/sh\n", mode=0o6755),
        _member("open", tarfile.DIRTYPE, mode=0o1777),
        _member("fifo", tarfile.FIFOTYPE),
        _member("tty", tarfile.CHRTYPE),
        _member("disk", tarfile.BLKTYPE),
        _member("hard", tarfile.LNKTYPE, link="bin/run"),
    )
    await store.receive_model(_manifest("m"), iter_bytes(raw))
    model = Path(store.dir) / "m"
    mask = umask()
    got = {
        p: stat.S_IMODE(os.lstat(model / p).st_mode) for p in ("openvino_model.xml", "bin/run", "open", "bin")
    }
    assert got == {
        "openvino_model.xml": 0o644 & ~mask,
        "bin/run": 0o644 & ~mask,
        "open": 0o755 & ~mask,
        "bin": 0o755 & ~mask,
    }
    assert sorted(os.listdir(model)) == ["bin", "hard", "open", "openvino_model.xml"]
    assert stat.S_ISREG(os.lstat(model / "hard").st_mode) and (model / "hard").read_bytes() == b"#!/bin/sh\n"


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        pytest.param(_member("a", data=b"hello")[:100], "unexpected EOF", id="short-header"),
        pytest.param(
            bytes((i * 37 + 11) % 255 + 1 for i in range(512)),
            "archive/tar: invalid tar header",
            id="garbage",
        ),
        pytest.param(_member("a", data=b"x" * 1000)[:612], "unexpected EOF", id="truncated-body"),
        pytest.param(
            (lambda h: h[:148] + b"0000000\x00" + h[156:])(_member("a", data=b"hello")) + ZERO + ZERO,
            "archive/tar: invalid tar header",
            id="bad-checksum",
        ),
        pytest.param(
            _member("a") + ZERO + b"\x01" * 512, "archive/tar: invalid tar header", id="zero-then-garbage"
        ),
        pytest.param(_member("a") + ZERO + bytes(100), "unexpected EOF", id="zero-then-short"),
        pytest.param(
            _member("././@PaxHeader", b"x", data=b"garbage record\n") + _member("a") + ZERO + ZERO,
            "archive/tar: invalid tar header",
            id="bad-pax-record",
        ),
        pytest.param(
            _member("././@PaxHeader", b"x", data=b"x" * ((1 << 20) + 1)),
            "archive/tar: header field too long",
            id="pax-over-1MiB",
        ),
        pytest.param(
            _member("../x", data=b"1") + ZERO + ZERO, 'archiveutil: unsafe archive path "../x"', id="dotdot"
        ),
        pytest.param(
            _member("l", tarfile.SYMTYPE, link="../../x") + ZERO + ZERO,
            'archiveutil: unsafe archive path "../../x"',
            id="symlink-out",
        ),
    ],
)
async def test_malformed_streams_get_gos_answer(store: ModelStore, raw: bytes, error: str) -> None:
    # the same answer however the stream is cut into frames (byte by byte only for small streams)
    for chunking in (1, 511, len(raw)) if len(raw) < 65536 else (4093, len(raw)):
        with pytest.raises(werr.ModeldError) as ei:
            chunks = [raw[i : i + chunking] for i in range(0, len(raw), chunking)]
            await store.receive_model(_manifest("m"), iter_bytes(*chunks))
        assert werr.status_for(ei.value)[:2] == (13, f"internal: {STAGED}{error}")
    assert os.listdir(store.dir) == []  # the staging directory is gone


@pytest.mark.parametrize(
    ("raw", "read"),
    [
        pytest.param(b"", 0, id="empty"),
        pytest.param(_member("a", data=b"x" * 100)[:612], 612, id="truncated-padding"),
        pytest.param(_member("a") + ZERO, 1024, id="one-zero-block"),
        pytest.param(_member("a") + ZERO + ZERO + b"junk" * 300, 1536, id="trailing-bytes"),
        pytest.param(_member("a", data=b"q") + ZERO + ZERO + bytes(8192), 2048, id="record-padding"),
    ],
)
async def test_streams_go_reads_to_a_clean_end(store: ModelStore, raw: bytes, read: int) -> None:
    # the digest and bytes_written cover exactly what Go's reader read before its end of archive
    man = _manifest("m", raw[:read])
    resp = await store.receive_model(man, iter_bytes(raw))
    assert (resp.bytes_written, resp.already_present) == (read, False)


async def test_symlink_chain_over_the_wire_writes_nothing_outside(tmp_path: Path) -> None:
    root = tmp_path / "x" / "y" / "data"
    with served_sim(str(root)) as srv:
        before = {p for p in tree(str(tmp_path)) if not p.startswith("x/y/data/")}
        body = {
            "manifest": {"name": "m", "type": "openvino", "format": "tar"},
            "data": base64.b64encode(CHAIN).decode(),
        }
        async with srv.client() as c:
            r = await call(c, "PushModel", body, srv.instance_id)
            assert (r.code, r.messages) == (0, [b'{"bytes_written":%d}' % len(CHAIN)])
            assert (await call(c, "Health", {}, srv.instance_id)).code == 0
        after = tree(str(tmp_path))
        assert {p for p in after if not p.startswith("x/y/data/")} == before
        assert not [p for p, kind in after.items() if kind.startswith("l")]
        assert (root / "models" / "m" / "s" / "p" / "q" / "r" / "ESCAPED").read_bytes() == b"outside"
