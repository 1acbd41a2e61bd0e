"""Reference driver: ``python -m modeld_contract.drivers.modeldconn [--connector module:factory]``.

Speaks the driver protocol (docs/driver-protocol.md) on stdin/stdout around our Python connector
``modeldconn`` (or any ``module:factory`` the in-process adapter accepts), so the suite can drive it
exactly as it drives a connector written in another language. The optional ops — ``push_model`` and
the targeted API (``endpoint``, ``close_endpoint``, ``target_*``) — are served and announced in the
hello when the connector has them (``modeldconn``: ``push_model``, ``endpoint``, ``close_endpoint``).
"""

from __future__ import annotations

import argparse
import sys

from modeld_contract.connectors.loader import load_python_connector
from modeld_contract.drivers._serve import serve


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m modeld_contract.drivers.modeldconn")
    ap.add_argument("--connector", default="modeldconn", help="a Python module or module:factory")
    ns = ap.parse_args(argv)
    spec = str(ns.connector)
    return serve(lambda: load_python_connector(spec), spec)


if __name__ == "__main__":
    sys.exit(main())
