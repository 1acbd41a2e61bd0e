"""Open a session, prefill, decode 8 tokens (blocking API).

Against the simulator, in two shells (or with ``&``):

    modeld-sim serve --data-root /tmp/modeld
    CONTENOX_DATA_ROOT=/tmp/modeld python examples/quickstart.py

With no argument the model is made on the spot: a tiny GGUF the simulator's fake engine serves (what
``modeld-sim make-model --out tiny.gguf`` writes). Name your own model for a real daemon or a real engine:
``python examples/quickstart.py /path/to/model.gguf`` (or ``MODELD_MODEL=/path/to/model.gguf``).
``CONTENOX_DATA_ROOT`` names the daemon's data root (default ~/.contenox).

When no daemon answers it says so in one line (the probe's state and how to start one) and exits 1.
"""

from __future__ import annotations

import os
import sys
import tempfile

from modeldconn import Config, DecodeConfig, ModeldError, ModelRef, ProbeError, sync


def tiny_model(directory: str) -> str:
    """A model the simulator serves, written now (metadata only: the fake engine needs no weights)."""
    from modeld_sim.gguf import write_fake_gguf

    return write_fake_gguf(os.path.join(directory, "quickstart.gguf"), context_length=256, name="quickstart")


def run(path: str) -> None:
    ref = ModelRef(os.path.splitext(os.path.basename(path))[0], "llama", path=path)
    with sync.open_session(ref, Config(num_ctx=128)) as session:
        session.ensure_prefix("hello world")
        session.prefill_suffix(" again")
        for chunk in session.decode(DecodeConfig(max_tokens=8)):
            print(repr(chunk.text))


def main(argv: list[str]) -> int:
    root = sync.data_root()
    given = argv[1] if len(argv) > 1 else os.environ.get("MODELD_MODEL", "")
    with tempfile.TemporaryDirectory(prefix="modeld-quickstart-") as tmp:
        try:
            run(os.path.abspath(given) if given else tiny_model(tmp))
        except ProbeError as exc:
            print(
                f"quickstart: no modeld serves {root} (probe: {exc.state.value}: {exc}); "
                f"start one with: modeld-sim serve --data-root {root}",
                file=sys.stderr,
            )
            return 1
        except ModeldError as exc:
            print(f"quickstart: the daemon at {root} refused: {exc.plain_text}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
