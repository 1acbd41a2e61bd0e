"""Open a session, prefill, decode 8 tokens (blocking API).

python examples/quickstart.py /path/to/model.gguf      # or: MODELD_MODEL=/path/to/model.gguf
CONTENOX_DATA_ROOT=/path/to/data-root  (default ~/.contenox) names the daemon's data root.
"""

import os
import sys

from modeldconn import Config, DecodeConfig, ModelRef, sync

path = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.environ["MODELD_MODEL"])
ref = ModelRef(os.path.splitext(os.path.basename(path))[0], "llama", path=path)
with sync.open_session(ref, Config(num_ctx=128)) as session:
    session.ensure_prefix("hello world")
    session.prefill_suffix(" again")
    for chunk in session.decode(DecodeConfig(max_tokens=8)):
        print(repr(chunk.text))
