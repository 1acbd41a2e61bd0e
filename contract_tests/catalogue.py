"""The clause catalogue: each clause's full sentence and its sources, read from the table that ships
with the suite (``CLAUSES.md`` beside this module), so the report states the rule a clause checks in
full rather than a docstring's first line."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CATALOGUE", "CONTRACT_DIR", "CONTRACT_VERSION", "Entry", "entries", "suite_version"]

CATALOGUE = Path(__file__).resolve().parent / "CLAUSES.md"
# the reference of the contract the sources cite (wire.md, session-semantics.md, …), shipped with the suite
CONTRACT_DIR = Path(__file__).resolve().parent / "contract"
CONTRACT_VERSION = "contenox/runtime v0.36.0"


@dataclass(frozen=True)
class Entry:
    clause: str
    sentence: str
    source: str


def _cells(line: str) -> list[str]:
    # a Markdown table row; "\|" is a literal bar inside a cell
    body = line.strip().strip("|").replace("\\|", "\x00")
    return [c.strip().replace("\x00", "|") for c in body.split("|")]


@functools.cache
def entries() -> dict[str, Entry]:
    try:
        text = CATALOGUE.read_text(encoding="utf-8")
    except OSError:
        return {}
    out: dict[str, Entry] = {}
    for line in text.splitlines():
        if not line.startswith("| C-"):
            continue
        cells = _cells(line)
        if len(cells) >= 3:
            out[cells[0]] = Entry(cells[0], cells[1], cells[2])
    return out


@functools.cache
def suite_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("modeld-contract")
    except metadata.PackageNotFoundError:
        return "unknown"
