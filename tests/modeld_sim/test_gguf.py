"""modeld_sim.gguf: the pure-Python GGUF metadata reader and the fake-GGUF writer."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from _sim_recorded import TINY_GGUF, reply_message

from modeld_sim.engines.base import PlainError
from modeld_sim.engines.fake import FakeEngine
from modeld_sim.gguf import GGUFError, read_gguf, write_fake_gguf


def test_reads_the_real_tiny_gguf() -> None:
    g = read_gguf(TINY_GGUF)
    assert g.version == 3
    assert g.architecture == "llama"
    assert g.context_length == 256
    assert g.embedding_length == 64
    assert g.arch_int("block_count") == 2
    assert g.arch_int("attention.head_count_kv") == 4
    assert g.has_tokenizer
    assert g.get("tokenizer.ggml.add_bos_token") is False
    assert len(g.get("tokenizer.ggml.tokens")) == 266
    assert len(g.tensors) == 21


def test_fake_gguf_roundtrip(tmp_path: Path) -> None:
    p = write_fake_gguf(
        tmp_path / "m" / "model.gguf",
        context_length=512,
        name="fake-x",
        embedding_length=32,
        decode_text="hi",
        supports_vision=True,
        vision_tokens_per_image=64,
        chat_template_format="chatml",
    )
    g = read_gguf(p)
    assert g.context_length == 512
    assert g.embedding_length == 32
    assert g.get("general.name") == "fake-x"
    assert g.get("modeld_sim.decode_text") == "hi"
    assert g.get("modeld_sim.supports_vision") is True
    assert g.get("modeld_sim.vision_tokens_per_image") == 64
    assert g.has_tokenizer
    facts = FakeEngine("llama").inspect(p)
    assert facts.context_length == 512
    assert facts.chat_template_format == "chatml"
    assert facts.decode_text == "hi"
    assert facts.supports_vision


def test_writer_without_tokenizer_and_extra_keys(tmp_path: Path) -> None:
    p = write_fake_gguf(
        tmp_path / "a.gguf",
        tokenizer=False,
        architecture="qwen2",
        extra={"qwen2.attention.sliding_window": 128, "arr": [1, 2, 3], "neg": -5},
    )
    g = read_gguf(p)
    assert not g.has_tokenizer
    assert g.arch_int("attention.sliding_window") == 128
    assert g.get("arr") == [1, 2, 3]
    assert g.get("neg") == -5


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + struct.pack("<I", 3) + b"garbage")  # the recorded 15 bytes
    assert corrupt.stat().st_size == 15
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(TINY_GGUF.read_bytes()[:4096])
    non = tmp_path / "notgguf.bin"
    non.write_bytes(b"hello world, not a model")
    v1 = tmp_path / "v1.gguf"
    v1.write_bytes(b"GGUF" + struct.pack("<I", 1) + b"\0" * 16)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    d = tmp_path / "dir"
    d.mkdir()
    return {
        "corrupt": corrupt,
        "truncated": truncated,
        "non": non,
        "v1": v1,
        "empty": empty,
        "dir": d,
        "missing": tmp_path / "nope" / "m.gguf",
    }


def test_unreadable_files_fail(tmp_path: Path) -> None:
    for path in _bad_files(tmp_path).values():
        with pytest.raises(GGUFError):
            read_gguf(path)


def test_fake_engine_inspect_error_text_matches_recording(tmp_path: Path) -> None:
    # observed/real-llama.jsonl load.missing_path / llama.open_corrupt_gguf / …truncated / …directory
    eng = FakeEngine("llama")
    rec = reply_message("real-llama.jsonl", "load.missing_path")
    prefix = "model_load_failed: modeld failed to load model: "
    want = rec[len(prefix) :]
    with pytest.raises(PlainError) as ei:
        eng.inspect("/nonexistent/m.gguf")
    assert str(ei.value) == want
    for path in _bad_files(tmp_path).values():
        with pytest.raises(PlainError) as ei:
            eng.inspect(str(path))
        assert str(ei.value) == f'llama model KV profile: llamacppshim: inspect GGUF metadata "{path}"'


def test_go_quoting_of_odd_paths(tmp_path: Path) -> None:
    with pytest.raises(PlainError) as ei:
        FakeEngine("llama").inspect('/x/"q"\\\n.gguf')
    assert str(ei.value).endswith('inspect GGUF metadata "/x/\\"q\\"\\\\\\n.gguf"')
