"""What changed between two recordings, case by case (``python -m modeld_contract.real diff OLD NEW``).

Cases are matched by name. For each case present in both, the report says what changed, by kind:

- ``status``: the grpc-status code or the HTTP status;
- ``message``: the grpc-message;
- ``body``: the response messages, the decoded status details, the content-type, a timeout;
- ``key order``: the same keys and values in another order (part of the contract: Go's struct order);
- ``request``: the request sent (a recording made from another corpus);
- ``fact``: any other field (the lifecycle recordings' facts).

Cases only in OLD (removed), only in NEW (added), and a changed order of the common cases are reported too.
``<machine>`` is a value like any other: both sides were written with the same masking.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = ["CaseDiff", "diff_files", "diff_lines", "diff_values"]

MAX_LINES_PER_CASE: Final = 12
_STATUS_KEYS: Final = ("code", "http_status")
_BODY_KEYS: Final = ("messages", "details", "content_type", "timed_out")


def _show(v: Any, limit: int = 160) -> str:
    text = json.dumps(v, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def diff_values(old: Any, new: Any, path: str = "") -> list[tuple[str, str]]:
    """Differences between two JSON values: (kind, text), kind ``order`` for key order, else ``value``."""
    where = path or "(top)"
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, str]] = []
        ok, nk = list(old), list(new)
        common_old = [k for k in ok if k in new]
        common_new = [k for k in nk if k in old]
        if common_old != common_new:
            out.append(("order", f"{where}: keys {_show(ok)} → {_show(nk)}"))
        for k in ok:
            if k not in new:
                out.append(("value", f"{path}.{k}: removed (was {_show(old[k])})"))
        for k in nk:
            if k not in old:
                out.append(("value", f"{path}.{k}: added {_show(new[k])}"))
        for k in common_old:
            out.extend(diff_values(old[k], new[k], f"{path}.{k}"))
        return out
    if isinstance(old, list) and isinstance(new, list):
        out = []
        if len(old) != len(new):
            out.append(("value", f"{where}: {len(old)} items → {len(new)} items"))
        for i, (a, b) in enumerate(zip(old, new, strict=False)):
            out.extend(diff_values(a, b, f"{path}[{i}]"))
        return out
    # 1, 1.0 and true are different JSON texts: compare type and value.
    if type(old) is not type(new) or old != new:
        return [("value", f"{where}: {_show(old)} → {_show(new)}")]
    return []


@dataclass
class CaseDiff:
    """What changed in one case."""

    name: str
    old_line: int
    new_line: int
    changes: list[tuple[str, str]] = field(default_factory=list)

    def render(self) -> str:
        head = f"case {self.name} (line {self.old_line} → {self.new_line})"
        shown = self.changes[:MAX_LINES_PER_CASE]
        body = [f"  {kind}: {text}" for kind, text in shown]
        if len(self.changes) > len(shown):
            body.append(f"  … {len(self.changes) - len(shown)} more")
        return "\n".join([head, *body])


def _reply_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for k in _STATUS_KEYS:
        if old.get(k) != new.get(k) or (k in old) != (k in new):
            out.append(("status", f"{k} {_show(old.get(k))} → {_show(new.get(k))}"))
    if old.get("message") != new.get("message") or ("message" in old) != ("message" in new):
        out.append(("message", f"{_show(old.get('message'), 400)} → {_show(new.get('message'), 400)}"))
    for k in _BODY_KEYS:
        if k not in old and k not in new:
            continue
        if (k in old) != (k in new):
            out.append(
                (
                    "body",
                    f"{k}: {_show(old.get(k)) if k in old else 'absent'} → "
                    f"{_show(new.get(k)) if k in new else 'absent'}",
                )
            )
            continue
        for kind, text in diff_values(old[k], new[k], k):
            out.append(("key order" if kind == "order" else "body", text))
    known = {*_STATUS_KEYS, "message", *_BODY_KEYS}
    for kind, text in diff_values(
        {k: v for k, v in old.items() if k not in known},
        {k: v for k, v in new.items() if k not in known},
        "reply",
    ):
        out.append(("key order" if kind == "order" else "body", text))
    return out


def _case_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if list(old) != list(new) and set(old) == set(new):
        out.append(("key order", f"line keys {_show(list(old))} → {_show(list(new))}"))
    for k in dict.fromkeys([*old, *new]):
        if k == "case":
            continue
        if k == "reply" and isinstance(old.get(k), dict) and isinstance(new.get(k), dict):
            out.extend(_reply_changes(old[k], new[k]))
        elif k in ("request", "method"):
            if old.get(k) != new.get(k) or json.dumps(old.get(k)) != json.dumps(new.get(k)):
                out.extend(
                    ("request", f"{k}: {t}")
                    for _, t in diff_values(old.get(k), new.get(k), k) or [("value", "absent on one side")]
                )
        else:
            if k not in old or k not in new:
                out.append(
                    (
                        "fact",
                        f"{k}: {_show(old.get(k)) if k in old else 'absent'} → "
                        f"{_show(new.get(k)) if k in new else 'absent'}",
                    )
                )
                continue
            out.extend(
                ("key order" if kind == "order" else "fact", t) for kind, t in diff_values(old[k], new[k], k)
            )
    return out


def _keyed(lines: list[dict[str, Any]]) -> dict[str, tuple[int, dict[str, Any]]]:
    out: dict[str, tuple[int, dict[str, Any]]] = {}
    seen: dict[str, int] = {}
    for i, line in enumerate(lines, 1):
        name = str(line.get("case"))
        seen[name] = seen.get(name, 0) + 1
        out[name if seen[name] == 1 else f"{name}#{seen[name]}"] = (i, line)
    return out


def diff_lines(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> tuple[list[str], list[CaseDiff], int]:
    """(report paragraphs for added/removed/moved cases, per-case diffs, number of cases compared)."""
    ko, kn = _keyed(old), _keyed(new)
    notes: list[str] = []
    removed = [n for n in ko if n not in kn]
    added = [n for n in kn if n not in ko]
    if removed:
        notes.append("removed (only in OLD): " + ", ".join(removed))
    if added:
        notes.append("added (only in NEW): " + ", ".join(added))
    common_old = [n for n in ko if n in kn]
    common_new = [n for n in kn if n in ko]
    if common_old != common_new:
        moved = [n for n, m in zip(common_old, common_new, strict=True) if n != m]
        notes.append(f"order changed: {len(moved)} cases at other positions, first {moved[0]}")
    diffs: list[CaseDiff] = []
    for name in common_old:
        (io, lo), (in_, ln) = ko[name], kn[name]
        changes = _case_changes(lo, ln)
        if changes:
            diffs.append(CaseDiff(name, io, in_, changes))
    return notes, diffs, len(common_old)


def _load(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as fh:
        for n, text in enumerate(fh, 1):
            if not text.strip():
                continue
            value = json.loads(text)
            if not isinstance(value, dict) or "case" not in value:
                raise ValueError(f"{path}:{n}: not a recording line (a JSON object with a 'case')")
            out.append(value)
    return out


def diff_files(old: Path, new: Path) -> tuple[str, bool]:
    """The report comparing two recordings, and whether they differ."""
    notes, diffs, compared = diff_lines(_load(old), _load(new))
    parts = [f"--- {old}", f"+++ {new}", *notes, *(d.render() for d in diffs)]
    differs = bool(notes or diffs)
    kinds: dict[str, int] = {}
    for d in diffs:
        for kind in dict.fromkeys(k for k, _ in d.changes):
            kinds[kind] = kinds.get(kind, 0) + 1
    summary = f"{compared} cases compared, {len(diffs)} differ"
    if kinds:
        summary += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) + ")"
    if notes:
        summary += f"; {len(notes)} structural change(s)"
    parts.append(summary if differs else f"{summary}: identical")
    return "\n".join(parts) + "\n", differs
