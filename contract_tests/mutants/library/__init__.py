"""The shipped broken connectors: each a thin subclass of the reference connector with one realistic
defect, registered with its family (:data:`FAMILIES`). ``--modeld-connector`` spec: ``REGISTRY[name].spec``.
"""

from __future__ import annotations

from modeld_contract.mutants.library import (  # noqa: F401 - each module registers its mutants
    deadlines,
    decoding,
    discovery,
    encoding,
    errors,
    fencing,
    leases,
    retries,
    sessions,
    streams,
)
from modeld_contract.mutants.library._registry import FAMILIES, REGISTRY, Mutant

__all__ = ["CONTROL_SPEC", "FAMILIES", "REGISTRY", "Mutant"]

#: The unmodified reference connector, wrapped exactly as the mutants are.
CONTROL_SPEC = "modeld_contract.mutants.library.control:Control"
