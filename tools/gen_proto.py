"""Regenerate the Python modules of proto/ into modeldconn/wire/_gen/.

    python tools/gen_proto.py            # rewrite the checked-in generated code
    python tools/gen_proto.py --out DIR  # write elsewhere (the staleness test does this)

protoc comes from grpcio-tools (pinned in the `dev` extra, so the output is
reproducible); grpcio itself is never a runtime dependency. protoc writes absolute
imports (`from contenox.gojson.v1 import ...`); they are rewritten to the package
path so the generated code works without touching sys.path.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
GEN_DIR = ROOT / "modeldconn" / "wire" / "_gen"
GEN_PACKAGE = "modeldconn.wire._gen"
PROTOS = ["contenox/gojson/v1/gojson.proto", "contenox/transport/v1/compute.proto"]
_INIT_DOC = '"""Generated protobuf modules (do not edit; see tools/gen_proto.py)."""\n'
_IMPORT = re.compile(r"^from contenox\.", re.MULTILINE)


def generate(out: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc  # dev-only dependency

    include = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            *PROTOS,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        if out.exists():
            for child in out.iterdir():
                if child.name != "__init__.py":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        out.mkdir(parents=True, exist_ok=True)
        (out / "__init__.py").write_text(_INIT_DOC)
        for path in sorted(Path(tmp).rglob("*")):
            rel = path.relative_to(tmp)
            target = out / rel
            if path.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                (target / "__init__.py").write_text("")
                continue
            text = _IMPORT.sub(f"from {GEN_PACKAGE}.contenox.", path.read_text())
            target.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=GEN_DIR)
    ns = parser.parse_args(argv)
    generate(ns.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
