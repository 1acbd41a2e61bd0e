"""``python -m modeld_contract.mutants``: see :mod:`modeld_contract.mutants.runner`."""

from __future__ import annotations

import sys

from modeld_contract.mutants.runner import main

if __name__ == "__main__":
    sys.exit(main())
