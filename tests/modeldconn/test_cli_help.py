"""`python -m modeldconn status --help` and `python -m modeldconn.lease inspect --help` list the exit
statuses, and the statuses the commands really return are the ones listed for what they report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from modeldconn import __main__ as doctor
from modeldconn import lease as liblease
from modeldconn.probe import ProbeState


def _help(main: object, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as ei:
        main(argv)  # type: ignore[operator]
    assert ei.value.code == 0
    return capsys.readouterr().out


def _exit_table(text: str) -> dict[int, str]:
    tail = text.split("exit status:\n", 1)[1]
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^  (\d+)  (.+)$", tail, re.M)}


@pytest.mark.parametrize("argv", [["--help"], ["status", "--help"]])
def test_doctor_help_lists_every_exit_status(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    table = _exit_table(_help(doctor.main, argv, capsys))
    assert sorted(table) == [0, 1, 2, 3, 4, 5, 6]
    for state, code in doctor.EXIT_CODES.items():
        assert table[code].startswith(f"{state.value}: "), (state, table[code])
    assert "Status failed" in table[doctor.EXIT_STATUS_FAILED] and table[2] == "usage error"


def test_doctor_exit_status_is_the_one_its_help_lists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    table = _exit_table(_help(doctor.main, ["status", "--help"], capsys))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no modeld binary on PATH
    binary = tmp_path / "modeld"  # found through CONTENOX_MODELD_BIN: it exists, it is never run
    binary.write_text("")
    (tmp_path / "stale").mkdir()
    lapsed = b'{"instance_id": "gone", "renewed_at": "2020-01-01T00:00:00Z", "ttl": 1000000000}'
    (tmp_path / "stale" / "modeld.lease").write_bytes(lapsed)
    seen = set()
    for root, with_binary, want in (
        ("empty", False, ProbeState.NOT_INSTALLED),
        ("empty", True, ProbeState.NOT_RUNNING),
        ("stale", True, ProbeState.STALE),
    ):
        if with_binary:
            monkeypatch.setenv("CONTENOX_MODELD_BIN", str(binary))
        else:
            monkeypatch.delenv("CONTENOX_MODELD_BIN", raising=False)
        code = doctor.main(["status", "--data-root", str(tmp_path / root), "--json"])
        state = json.loads(capsys.readouterr().out)["state"]
        assert state == want.value and table[code].startswith(f"{state}: ")
        seen.add(code)
    assert len(seen) == 3


@pytest.mark.parametrize("value", ["0", "-1", "nan", "soon"])
def test_doctor_timeout_must_be_positive_seconds(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        doctor.main(["status", "--timeout", value])
    assert ei.value.code == 2
    assert "argument --timeout: want seconds" in capsys.readouterr().err


def test_lease_inspect_help_lists_its_exit_statuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _exit_table(_help(liblease.main, ["inspect", "--help"], capsys))
    assert sorted(table) == [0, 1, 2] and table[2] == "usage error"
    assert liblease.main(["inspect", str(tmp_path)]) == 1 and "no readable lease" in table[1]
    assert capsys.readouterr().err.count("\n") == 1
    (tmp_path / "modeld.lease").write_bytes(b'{"instance_id": "x", "ttl": 1}')
    assert liblease.main(["inspect", str(tmp_path)]) == 0 and "a record was read" in table[0]
