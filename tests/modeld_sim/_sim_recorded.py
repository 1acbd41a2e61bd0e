"""Helpers shared by the modeld_sim slot / store / fake engine tests: the recordings and the model."""

from __future__ import annotations

import json
from typing import Any

from modeld_contract.corpus import observed

TINY_GGUF = observed("tiny-llama-ctx256.gguf")


def recorded(file: str) -> dict[str, dict[str, Any]]:
    """Cases of an observed/*.jsonl file by name."""
    out: dict[str, dict[str, Any]] = {}
    with open(observed(file), encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            out[d["case"]] = d
    return out


def reply_message(file: str, case: str) -> str:
    msg: str = recorded(file)[case]["reply"]["message"]
    return msg


def reply_messages(file: str, case: str) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = recorded(file)[case]["reply"].get("messages") or []
    return msgs
