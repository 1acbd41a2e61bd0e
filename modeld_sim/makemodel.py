"""Tiny models made on the spot (``modeld-sim make-model``; docs/engines.md, docs/fake-engine.md).

* ``fake`` (the default): a metadata-only GGUF (:func:`modeld_sim.gguf.write_fake_gguf`, no tensors)
  that the simulator's default fake engine serves; it needs no extra.
* ``llama``: a GGUF v3 file written with the ``gguf`` package: a Llama-architecture model (default 2
  blocks, embedding 64, 4 heads, feed-forward 128, context 256, f32 weights) with an embedded
  GPT-2-style byte-level BPE tokenizer (256 byte symbols in GPT-2 order, a few merges, ``<|bos|>`` and
  ``<|eos|>``), the shape of the corpus's ``tiny-llama-ctx256.gguf``. llama.cpp loads it as is.
* ``openvino``: a directory with ``openvino_model.xml`` / ``.bin`` — a stateful Llama-style IR built
  with OpenVINO's opset API (:mod:`modeld_sim.engines.openvino` documents its inputs and states) —
  plus ``tokenizer.json`` (the same byte-level BPE in Hugging Face ``tokenizers`` form) and
  ``modeld_sim.json`` (the model facts the engine reports).

Weights are drawn from ``numpy.random.default_rng(seed)``: the same seed gives the same bytes. The
output rows of BOS and EOS are zero (their logits stay 0, far below the best one), so greedy decoding
runs to ``MaxTokens`` instead of stopping at a random end of generation.
A step that takes longer than a second reports its progress on stderr.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, TextIO

__all__ = [
    "BOS_TOKEN",
    "DEFAULT_MERGES",
    "EOS_TOKEN",
    "ModelShape",
    "byte_vocab",
    "main",
    "make_llama_gguf",
    "make_openvino_dir",
]

BOS_TOKEN: Final = "<|bos|>"
EOS_TOKEN: Final = "<|eos|>"
DEFAULT_MERGES: Final = ("h e", "l l", "o Ġ", "Ġ t", "e r", "i n", "Ġ a", "r e")


@dataclass(frozen=True)
class ModelShape:
    context_length: int = 256
    embedding_length: int = 64
    block_count: int = 2
    head_count: int = 4
    head_count_kv: int = 4
    feed_forward_length: int = 128
    rms_eps: float = 1e-5
    rope_theta: float = 10000.0
    name: str = "tiny-random-llama"

    @property
    def head_dim(self) -> int:
        return self.embedding_length // self.head_count


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable-character map."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


def byte_vocab(merges: tuple[str, ...] = DEFAULT_MERGES) -> tuple[list[str], list[str]]:
    """(tokens, merges): 256 byte symbols in GPT-2 order, one token per merge, then BOS and EOS."""
    b2u = _bytes_to_unicode()
    order = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    order += [b for b in range(256) if b not in order]
    tokens = [b2u[b] for b in order]
    tokens += [m.replace(" ", "") for m in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    return tokens, list(merges)


# ----------------------------------------------------------------------------------- progress


@contextmanager
def _step(what: str, out: TextIO | None) -> Iterator[None]:
    """Report ``what`` on ``out`` if it is still running after 1 s (and how long it took)."""
    if out is None:
        yield
        return
    t0 = time.monotonic()
    done = threading.Event()
    announced = threading.Event()

    def watch() -> None:
        if not done.wait(1.0):
            announced.set()
            print(f"make-model: {what} …", file=out, flush=True)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    try:
        yield
    finally:
        done.set()
        th.join()
        if announced.is_set():
            print(f"make-model: {what}: done in {time.monotonic() - t0:.1f} s", file=out, flush=True)


# ----------------------------------------------------------------------------------- llama / GGUF


def _weights(seed: int, shape: ModelShape, n_vocab: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    e, f = shape.embedding_length, shape.feed_forward_length
    kv = shape.head_count_kv * shape.head_dim

    def mat(rows: int, cols: int, scale: float = 0.02) -> Any:
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)

    w: dict[str, Any] = {"token_embd.weight": mat(n_vocab, e, 0.5)}
    for i in range(shape.block_count):
        p = f"blk.{i}."
        w[p + "attn_norm.weight"] = np.ones(e, dtype=np.float32)
        w[p + "attn_q.weight"] = mat(e, e, 0.2)
        w[p + "attn_k.weight"] = mat(kv, e, 0.2)
        w[p + "attn_v.weight"] = mat(kv, e, 0.2)
        w[p + "attn_output.weight"] = mat(e, e, 0.2)
        w[p + "ffn_norm.weight"] = np.ones(e, dtype=np.float32)
        w[p + "ffn_gate.weight"] = mat(f, e, 0.2)
        w[p + "ffn_up.weight"] = mat(f, e, 0.2)
        w[p + "ffn_down.weight"] = mat(e, f, 0.2)
    w["output_norm.weight"] = np.ones(e, dtype=np.float32)
    out = mat(n_vocab, e, 0.5)
    out[n_vocab - 2 :, :] = 0.0  # BOS / EOS logits stay 0, far below the best: decoding runs to MaxTokens
    w["output.weight"] = out
    return w


def make_llama_gguf(
    out: str,
    *,
    seed: int = 0,
    shape: ModelShape | None = None,
    add_bos: bool = False,
    progress: TextIO | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Write a random-weight Llama GGUF to ``out`` (llama.cpp-loadable); returns ``out``.

    ``extra``: further key/values (e.g. ``{"modeld_sim.supports_embedding": False}``).
    """
    import gguf
    import numpy as np

    shape = shape or ModelShape()
    tokens, merges = byte_vocab()
    n_vocab = len(tokens)
    with _step("drawing the weights", progress):
        weights = _weights(seed, shape, n_vocab)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = out + ".tmp"
    with _step(f"writing {out}", progress):
        w = gguf.GGUFWriter(tmp, "llama")
        w.add_name(shape.name)
        w.add_context_length(shape.context_length)
        w.add_embedding_length(shape.embedding_length)
        w.add_block_count(shape.block_count)
        w.add_feed_forward_length(shape.feed_forward_length)
        w.add_head_count(shape.head_count)
        w.add_head_count_kv(shape.head_count_kv)
        w.add_rope_dimension_count(shape.head_dim)
        w.add_rope_freq_base(shape.rope_theta)
        w.add_layer_norm_rms_eps(shape.rms_eps)
        w.add_file_type(0)
        w.add_vocab_size(n_vocab)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_types([1] * (n_vocab - 2) + [3, 3])
        w.add_token_merges(merges)
        w.add_bos_token_id(n_vocab - 2)
        w.add_eos_token_id(n_vocab - 1)
        w.add_add_bos_token(add_bos)
        for k, v in (extra or {}).items():
            if isinstance(v, bool):
                w.add_bool(k, v)
            elif isinstance(v, int):
                w.add_int32(k, v)
            elif isinstance(v, float):
                w.add_float32(k, v)
            else:
                w.add_string(k, str(v))
        for name, arr in weights.items():
            w.add_tensor(name, np.ascontiguousarray(arr))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    os.replace(tmp, out)
    return out


# ----------------------------------------------------------------------------------- openvino


def _hf_tokenizer_json(tokens: list[str], merges: list[str]) -> dict[str, Any]:
    vocab = {t: i for i, t in enumerate(tokens)}
    n = len(tokens)
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": n - 2,
                "content": BOS_TOKEN,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            },
            {
                "id": n - 1,
                "content": EOS_TOKEN,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            },
        ],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "ByteLevel",
            "add_prefix_space": False,
            "trim_offsets": True,
            "use_regex": True,
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }


def make_openvino_dir(
    out: str,
    *,
    seed: int = 0,
    shape: ModelShape | None = None,
    add_bos: bool = False,
    progress: TextIO | None = None,
    facts: dict[str, Any] | None = None,
) -> str:
    """Write a tiny stateful Llama-style OpenVINO IR + tokenizer + facts into directory ``out``."""
    from modeld_sim.engines.openvino import build_ir

    shape = shape or ModelShape(name="tiny-random-openvino")
    tokens, merges = byte_vocab()
    with _step("drawing the weights", progress):
        weights = _weights(seed, shape, len(tokens))
    os.makedirs(out, exist_ok=True)
    with _step("building the OpenVINO IR", progress):
        build_ir(weights, shape, len(tokens), os.path.join(out, "openvino_model.xml"))
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(_hf_tokenizer_json(tokens, merges), f, ensure_ascii=False)
    meta: dict[str, Any] = {
        "architecture": "llama",
        "name": shape.name,
        "context_length": shape.context_length,
        "embedding_length": shape.embedding_length,
        "block_count": shape.block_count,
        "head_count": shape.head_count,
        "head_count_kv": shape.head_count_kv,
        "key_length": shape.head_dim,
        "add_bos": add_bos,
        "bos_token_id": len(tokens) - 2,
        "eos_token_id": len(tokens) - 1,
        "vocab_size": len(tokens),
    }
    meta.update(facts or {})
    with open(os.path.join(out, "modeld_sim.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    return out


# ----------------------------------------------------------------------------------- CLI


def main(args: Any, out: Callable[[str, str], None] | None = None) -> int:
    """``modeld-sim make-model`` (arguments parsed by :mod:`modeld_sim.cli`)."""
    if args.type == "fake":
        return _make_fake(args, out)
    shape = ModelShape(
        context_length=int(args.context_length),
        embedding_length=int(args.embedding_length),
        block_count=int(args.layers),
        head_count=int(args.heads),
        head_count_kv=int(args.heads),
        feed_forward_length=int(args.embedding_length) * 2,
        name=str(args.name or ("tiny-random-llama" if args.type == "llama" else "tiny-random-openvino")),
    )
    if shape.embedding_length % shape.head_count:
        print("make-model: --embedding-length must be a multiple of --heads", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        if args.type == "llama":
            path = make_llama_gguf(
                args.out, seed=args.seed, shape=shape, add_bos=args.add_bos, progress=sys.stderr
            )
        else:
            path = make_openvino_dir(
                args.out, seed=args.seed, shape=shape, add_bos=args.add_bos, progress=sys.stderr
            )
    except ImportError as exc:
        extra = "llama" if args.type == "llama" else "openvino"
        print(f"make-model: {exc} (install the '{extra}' extra)", file=sys.stderr)
        return 1
    line = f"make-model: wrote {args.type} model {path} (seed {args.seed}) in {time.monotonic() - t0:.2f} s"
    if out is not None:
        out("stdout", line)
    else:
        print(line, flush=True)
    return 0


def _make_fake(args: Any, out: Callable[[str, str], None] | None) -> int:
    from modeld_sim.gguf import write_fake_gguf

    if args.heads < 1 or args.embedding_length % args.heads:
        print("make-model: --embedding-length must be a multiple of --heads", file=sys.stderr)
        return 2
    try:
        path = write_fake_gguf(
            args.out,
            context_length=args.context_length,
            name=args.name or "tiny-fake",
            embedding_length=args.embedding_length,
            block_count=args.layers,
            head_count=args.heads,
            head_count_kv=args.heads,
            extra={"tokenizer.ggml.add_bos_token": bool(args.add_bos)},
        )
    except OSError as exc:
        print(f"make-model: write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    line = f"make-model: wrote fake model {path} (context {args.context_length}; the fake engine serves it)"
    if out is not None:
        out("stdout", line)
    else:
        print(line, flush=True)
    return 0


def add_parser(sub: Any) -> None:
    """The ``make-model`` sub-command's arguments."""
    m = sub.add_parser(
        "make-model",
        help="write a tiny model: metadata-only for the fake engine, or random weights for a real one",
    )
    m.add_argument(
        "--type",
        choices=("fake", "llama", "openvino"),
        default="fake",
        help="fake: a GGUF the default fake engine serves, no extra needed; llama: a llama.cpp-loadable "
        "GGUF (needs the 'llama' extra); openvino: an IR directory (needs the 'openvino' extra) "
        "(default: fake)",
    )
    m.add_argument("--out", required=True, help="GGUF file (fake, llama) or directory (openvino)")
    m.add_argument("--seed", type=int, default=0, help="weights seed, real types only (default: 0)")
    m.add_argument("--context-length", type=int, default=256, help="context length (default: 256)")
    m.add_argument("--embedding-length", type=int, default=64, help="embedding length (default: 64)")
    m.add_argument("--layers", type=int, default=2, help="blocks (default: 2)")
    m.add_argument("--heads", type=int, default=4, help="attention heads (default: 4)")
    m.add_argument("--name", default=None, help="general.name (default: tiny-fake / tiny-random-<type>)")
    m.add_argument("--add-bos", action="store_true", help="the tokenizer adds a BOS token (default: off)")
