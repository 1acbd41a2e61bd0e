"""Fixtures for the lease / probe tests: every test runs on the real filesystem and on pyfakefs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class LeaseFS:
    """Where a lease/probe test runs: ``root`` is an empty data root on that filesystem."""

    kind: str  # "real" or "fake"
    root: str
    fake: object | None = None  # the pyfakefs FakeFilesystem when kind == "fake"

    @property
    def is_fake(self) -> bool:
        return self.kind == "fake"

    def write(self, rel: str, data: bytes, mode: int = 0o600) -> str:
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        return path

    def become_non_root(self) -> None:
        """On pyfakefs, act as a non-root user (file modes enforced); the data root stays writable."""
        if self.is_fake:
            from pyfakefs.fake_filesystem import set_uid

            os.chmod(self.root, 0o777)
            set_uid(4242)


@pytest.fixture(params=["real", "fake"])
def lease_fs(request: pytest.FixtureRequest) -> Iterator[LeaseFS]:
    """Parametrises a test over the real filesystem (tmp_path) and pyfakefs (``fs``)."""
    if request.param == "real":
        tmp: Path = request.getfixturevalue("tmp_path")
        root = tmp / "data"
        root.mkdir()
        yield LeaseFS("real", str(root))
    else:
        fs = request.getfixturevalue("fs")
        fs.create_dir("/data")
        try:
            yield LeaseFS("fake", "/data", fs)
        finally:
            from pyfakefs.fake_filesystem import reset_ids

            reset_ids()
