"""Fixtures for the lease / probe tests: every test runs on the real filesystem and on pyfakefs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from leasefs_support import LeaseFS

__all__ = ["LeaseFS"]


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
