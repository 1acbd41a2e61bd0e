"""Print how long the real modeld's build took cold, and how long this call took (``tox -e real-*``).

    python -m modeld_contract.real.buildtimes [--or-skip] none|llama

Builds if needed (``modeld_contract.real.build``). The cold figures are the steps recorded in the cache's
``build.json`` by the build that filled it; a cached call takes a fraction of a second. A failed build
prints the failing step, its log tail and how to retry, and exits 2. With ``--or-skip`` (what the tox envs
pass) it exits 0 instead outside strict mode, and the tests then skip with that reason; under strict mode
(``CI=true``, ``MODELD_STRICT=1``: :mod:`modeld_contract.strict`) the failure stands.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from modeld_contract.real.build import BuildError, build
from modeld_contract.strict import is_strict


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    or_skip = "--or-skip" in args
    backends = [a for a in args if a != "--or-skip"] or ["none"]
    code = 0
    for backend in backends:
        t0 = time.monotonic()
        try:
            res = build(backend)
        except BuildError as exc:
            print(f"modeld {backend}: build failed: {exc}", file=sys.stderr)
            if or_skip and not is_strict():
                print(
                    f"modeld {backend}: not strict mode (CI / MODELD_STRICT unset): the tests that need it "
                    "skip with this reason",
                    file=sys.stderr,
                )
            else:
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
