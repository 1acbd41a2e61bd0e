"""modeld_sim.scenario: the worked examples parse, bad files name line and field, timelines play."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from modeld_sim import cli
from modeld_sim.cluster import Cluster
from modeld_sim.scenario import ScenarioError, load, loads, run
from modeld_sim.transcript import Transcript
from modeldconn import lease as liblease
from modeldconn import transport as t

DOCS = Path(__file__).resolve().parents[2] / "docs" / "scenarios"


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.toml")), ids=lambda p: p.name)
def test_worked_examples_are_valid(path: Path) -> None:
    sc = load(path)
    assert sc.steps and sc.name


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
    assert cli.main(["scenario", "check", str(DOCS / "flaky-decode.toml")]) == 0


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
            assert liblease.expired_for_liblease(
                liblease.inspect(liblease.lease_path(tmp_path)), time.time_ns()
            )
            new = await c.wait_leader(exclude={first.instance_id}, timeout=5)  # the standby took the lapse
            assert new.name == "node2"
        finally:
            conn.close()
    events = [e["event"] for e in tr.entries() if "event" in e]
    assert events.count("scenario.step") == 5 and "mark" in events and "lease.expire" in events
