"""The real modeld (``github.com/contenox/runtime`` v0.36.0): build it, run it, record it, diff recordings.

- :mod:`.build` — reproducible, cached builds (``python -m modeld_contract.real build --backend none|llama``).
- :mod:`.daemon` — :class:`RealDaemon`, one ``modeld serve`` process on a data root.
- :mod:`.record` — the recorder of the corpus (``record``, ``record-lifecycle``).
- :mod:`.diff` — what changed between two recordings (``diff OLD NEW``).

See ``docs/real-daemon.md``.
"""

from __future__ import annotations

from modeld_contract.real.build import BuildError, BuildResult, build, cache_root
from modeld_contract.real.daemon import DaemonError, RealDaemon

__all__ = ["BuildError", "BuildResult", "DaemonError", "RealDaemon", "build", "cache_root"]
