"""The filesystem a lease/probe test runs on (real tmp dir or pyfakefs), and how it writes files.

Kept out of conftest.py on purpose: every conftest module is imported under the one name `conftest`,
so when another directory's conftest holds that name in sys.modules, pyfakefs cannot find (and
patch) this code's `os` — the helper would then write to the real disk while the test reads the fake.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


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
