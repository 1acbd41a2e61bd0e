"""modeld_contract.real.diff: every kind of change is reported, identical recordings are not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from modeld_contract.corpus import MODELD_CORPUS
from modeld_contract.real.__main__ import main

NONE = MODELD_CORPUS / "real-none.jsonl"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(t) for t in path.read_text().splitlines() if t.strip()]


def _write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(ln) + "\n" for ln in lines))
    return path


def _edit(tmp_path: Path, case: str, fn: Any) -> Path:
    lines = _lines(NONE)
    for ln in lines:
        if ln["case"] == case:
            fn(ln)
    return _write(tmp_path / "new.jsonl", lines)


def test_identical_recordings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(NONE), str(NONE)]) == 0
    assert "103 cases compared, 0 differ: identical" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("case", "edit", "kind", "text"),
    [
        ("status.ok", lambda ln: ln["reply"].__setitem__("code", 9), "status", "code 0 → 9"),
        (
            "health.no_content_type",
            lambda ln: ln["reply"].__setitem__("http_status", "400"),
            "status",
            'http_status "415" → "400"',
        ),
        ("load.empty", lambda ln: ln["reply"].__setitem__("message", "nope"), "message", '→ "nope"'),
        (
            "status.ok",
            lambda ln: ln["reply"]["messages"][0].__setitem__("state", "Ready"),
            "body",
            'messages[0].state: "Empty" → "Ready"',
        ),
        (
            "status.ok",
            lambda ln: ln["reply"].__setitem__(
                "messages", [dict(reversed(list(ln["reply"]["messages"][0].items())))]
            ),
            "key order",
            "messages[0]: keys",
        ),
        (
            "health.plain_grpc",
            lambda ln: ln["reply"].__setitem__("content_type", "application/grpc+proto"),
            "body",
            "content_type",
        ),
        ("status.ok", lambda ln: ln["request"]["metadata"].clear(), "request", "request.metadata"),
        ("health.ok", lambda ln: ln["reply"]["messages"][0].__setitem__("ready", 1), "body", "true → 1"),
    ],
)
def test_each_kind_of_change_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, edit: Any, kind: str, text: str
) -> None:
    new = _edit(tmp_path, case, edit)
    assert main(["diff", str(NONE), str(new)]) == 1
    out = capsys.readouterr().out
    assert f"case {case} (line" in out and f"  {kind}: " in out and text in out, out
    assert "1 differ" in out


def test_added_removed_and_moved_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _lines(NONE)
    lines[0], lines[1] = lines[1], lines[0]
    del lines[5]
    lines.append({"case": "new.case", "method": "Health", "request": {}, "reply": {"code": 0}})
    new = _write(tmp_path / "new.jsonl", lines)
    assert main(["diff", str(NONE), str(new)]) == 1
    out = capsys.readouterr().out
    assert "removed (only in OLD): health.plain_grpc" in out
    assert "added (only in NEW): new.case" in out
    assert "order changed" in out


def test_lifecycle_fact_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = MODELD_CORPUS / "lifecycle-none.jsonl"
    lines = _lines(old)
    lines[7]["exit"] = 1
    assert main(["diff", str(old), str(_write(tmp_path / "new.jsonl", lines))]) == 1
    out = capsys.readouterr().out
    assert "case sigterm" in out and "fact: exit: 0 → 1" in out
