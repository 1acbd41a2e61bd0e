"""Print how long the real modeld's build took cold, and how long this call took (``tox -e real-*``).

    python -m modeld_contract.real.buildtimes none|llama

Builds if needed (``modeld_contract.real.build``). The cold figures are the steps recorded in the cache's
``build.json`` by the build that filled it; a cached call takes a fraction of a second. Exit 2 with the
build's reason when it fails (the tests then skip with that reason).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from modeld_contract.real.build import BuildError, build


def main(argv: Sequence[str] | None = None) -> int:
    backends = list(sys.argv[1:] if argv is None else argv) or ["none"]
    code = 0
    for backend in backends:
        t0 = time.monotonic()
        try:
            res = build(backend)
        except BuildError as exc:
            print(f"modeld {backend}: build failed: {exc.skip_reason()}", file=sys.stderr)
            code = 2
            continue
        took = time.monotonic() - t0
        cold = sum(s for _, s in res.steps)
        steps = ", ".join(f"{name} {s:.1f} s" for name, s in res.steps)
        state = "cached" if res.cached else "built now"
        print(f"modeld {backend}: {res.binary}")
        print(f"  cold build: {cold:.1f} s ({steps})")
        print(f"  this call: {took:.2f} s ({state})")
    return code


if __name__ == "__main__":
    sys.exit(main())
