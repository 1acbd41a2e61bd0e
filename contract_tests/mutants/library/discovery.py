"""Broken connectors that find the daemon in the wrong place."""

from __future__ import annotations

import os
import shutil

from modeld_contract.mutants.hooks import OfflineDecision
from modeld_contract.mutants.library._registry import mutant

from modeldconn import probe as _probe


@mutant("disc_env_root_ignored", "discovery")
class EnvRootIgnored(OfflineDecision):
    """Without an explicit data root, $CONTENOX_DATA_ROOT is ignored: always ~/.contenox."""

    @property
    def data_root(self) -> str:
        if self._root is not None:
            return self._root
        return os.path.join(os.environ.get("HOME", ""), ".contenox")


@mutant("disc_env_over_explicit", "discovery")
class EnvOverExplicit(OfflineDecision):
    """$CONTENOX_DATA_ROOT wins over the data root the caller configured."""

    @property
    def data_root(self) -> str:
        env = os.environ.get("CONTENOX_DATA_ROOT", "")
        if env:
            return env
        return self._root if self._root is not None else _probe.default_data_root()


@mutant("disc_path_before_override", "discovery")
class PathBeforeOverride(OfflineDecision):
    """The modeld binary is looked up on PATH before the CONTENOX_MODELD_BIN override."""

    def locate(self, data_root: str) -> str:
        found = shutil.which("modeld", path=os.environ.get("PATH", ""))
        return found or _probe.locate_binary(data_root)
