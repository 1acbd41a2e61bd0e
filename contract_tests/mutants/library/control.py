"""The control: the reference connector exactly as the broken connectors wrap it, no defect."""

from __future__ import annotations

from modeld_contract.mutants.hooks import HookedConnector

__all__ = ["Control"]


class Control(HookedConnector):
    """The reference connector behind the identity hooks (what every mutant is measured against)."""
