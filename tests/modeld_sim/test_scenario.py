"""modeld_sim.scenario: the worked examples parse, bad files name line and field, timelines play."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from modeld_sim import cli
from modeld_sim.cluster import Cluster
from modeld_sim.scenario import ScenarioError, find, load, loads, packaged, packaged_dir, run
from modeld_sim.transcript import Transcript
from modeldconn import lease as liblease
from modeldconn import transport as t

PACKAGED = Path(packaged_dir())
REPO_DOCS = Path(__file__).resolve().parents[2] / "docs" / "scenarios"


def test_worked_examples_ship_inside_the_package() -> None:
    files = sorted(PACKAGED.glob("*.toml"))
    assert len(files) >= 4
    assert PACKAGED.parent == Path(__file__).resolve().parents[2] / "modeld_sim"
    assert sorted(packaged()) == [f.stem for f in files]
    assert not list(REPO_DOCS.glob("*.toml"))  # one copy: docs/scenarios/README.md points at the package
    assert "modeld_sim/scenarios/" in (REPO_DOCS / "README.md").read_text()


@pytest.mark.parametrize("path", sorted(PACKAGED.glob("*.toml")), ids=lambda p: p.name)
def test_worked_examples_are_valid(path: Path) -> None:
    sc = load(path)
    assert sc.steps and sc.name and sc.description


def test_find_takes_a_name_or_a_path(tmp_path: Path) -> None:
    assert find("leader-crash") == str(PACKAGED / "leader-crash.toml")
    assert find("leader-crash.toml") == str(PACKAGED / "leader-crash.toml")
    own = tmp_path / "leader-crash.toml"
    own.write_text('[[step]]\ndo = "mark"\ntext = "mine"\n')
    assert find(str(own)) == str(own)  # a file the user names wins over a packaged name
    with pytest.raises(ScenarioError) as ei:
        find("no-such-scenario")
    assert "no such file, nor a packaged scenario" in str(ei.value) and "leader-crash" in str(ei.value)


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        (
            '[[step]]\ndo = "fault.add"\nrule = { action = "error", token = "stale" }\n',
            3,
            "step[0].rule.token",
        ),
        (
            '[[step]]\ndo = "mark"\ntext = "a"\n\n[[step]]\nat = "2 parsecs"\ndo = "mark"\ntext = "b"\n',
            6,
            "step[1].at",
        ),
        (
            '[[step]]\ndo = "fault.add"\n[step.rule]\naction = "delay"\ndelay = "1s"\ncolour = 3\n',
            6,
            "step[0].rule.colour",
        ),
        ("[cluster]\nsize = 0\n", 2, "cluster.size"),
        ('[cluster]\nttl = "1s"\nrenew = "2s"\n', 3, "cluster.renew"),
        ('[[step]]\ndo = "lease.stale"\nbye = "1s"\n', 3, "step[0].bye"),
        ('[[step]]\ndo = "lease.melt"\n', 2, "step[0].do"),
        ('[[step]]\ndo = "node.explode"\n', 2, "step[0].do"),
        ('[[step]]\ndo = "mark"\n', 1, "step[0].text"),
        ('[[step]]\nat = "1s"\n', 1, "step[0]"),
        ('[[step]]\ndo = "mark"\ntext = "x"\nmethod = "Decode"\n', 4, "step[0].method"),
        ("[scenario]\nname = 3\n", 2, "scenario.name"),
        ('[[step]\ndo = "x"\n', 1, ""),
    ],
)
def test_invalid_scenarios_name_line_and_field(text: str, line: int, field: str) -> None:
    with pytest.raises(ScenarioError) as ei:
        loads(text, source="bad.toml")
    assert (ei.value.line, ei.value.field) == (line, field)
    assert str(ei.value).startswith(f"bad.toml:{line}: ")


def test_cli_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[step]]\ndo = "fault.add"\nrule = { action = "error", token = "stale" }\n')
    assert cli.main(["scenario", "check", str(bad)]) == 2
    assert f"{bad}:3: step[0].rule.token: unknown sentinel 'stale'" in capsys.readouterr().err
    assert cli.main(["scenario", "check", str(PACKAGED / "flaky-decode.toml")]) == 0
    assert cli.main(["scenario", "check", "flaky-decode"]) == 0
    assert "flaky-decode.toml: ok (" in capsys.readouterr().out
    assert cli.main(["scenario", "check", "nope"]) == 2
    assert "nope: no such file, nor a packaged scenario" in capsys.readouterr().err


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["scenario", "list"]) == 0
    cap = capsys.readouterr()
    rows = cap.out.splitlines()
    assert [r.split()[0] for r in rows] == sorted(packaged())
    crash = next(r for r in rows if r.startswith("leader-crash "))
    assert load(PACKAGED / "leader-crash.toml").description in crash and "(3 nodes, ttl 500ms)" in crash
    assert str(PACKAGED) in cap.err


async def test_timeline_plays_at_offsets_and_after_calls(tmp_path: Path) -> None:
    sc = loads(
        """
[[step]]
do = "fault.add"
rule = { id = "nr", action = "health", ready = false }

[[step]]
after_calls = 2
method = "Health"
do = "fault.remove"
id = "nr"

[[step]]
at = "200ms"
do = "lease.pause"

[[step]]
at = "250ms"
do = "lease.expire"

[[step]]
do = "mark"
text = "done"
"""
    )
    tr = Transcript()
    async with Cluster(tmp_path, 2, ttl=1.0, transcript=tr, stop_grace=0.1) as c:
        first = c.node(None)
        conn = t.Connection(first.endpoint)
        play = asyncio.create_task(run(sc, c))
        try:
            deadline = time.monotonic() + 5
            while c.faults.get("nr") is None:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.005)
            assert not (await conn.health(5)).ready
            assert not (await conn.health(5)).ready
            await asyncio.wait_for(play, 10)
            assert c.faults.get("nr") is None
            rec = liblease.inspect(liblease.lease_path(tmp_path))
            # expired by the step, unless the standby already took the lapsed lease over
            assert rec.instance_id != first.instance_id or liblease.expired_for_liblease(rec, time.time_ns())
            new = await c.wait_leader(exclude={first.instance_id}, timeout=5)  # the standby took the lapse
            assert new.name == "node2"
        finally:
            conn.close()
    events = [e["event"] for e in tr.entries() if "event" in e]
    assert events.count("scenario.step") == 5 and "mark" in events and "lease.expire" in events
