"""Scenario files: a TOML timeline of lease operations, fault rules and node faults.

Worked examples ship with the package in ``modeld_sim/scenarios/`` (``modeld-sim scenario list``); every
command that takes a scenario takes one of their names (``leader-crash``) or a file of your own
(:func:`find`, :func:`load_ref`).

Format (docs/scenarios/README.md)::

    [scenario]
    name = "leader dies mid-decode"
    duration = "10s"          # `scenario run`: stop this long after the start (default: after the last step)

    [cluster]                 # `scenario run` only (`serve --scenario` uses its own flags)
    size = 3
    ttl = "500ms"
    renew = "100ms"           # default ttl/3
    backend = "llama"

    [[step]]
    at = "1s"                 # offset from the start (leader serving); Go duration or milliseconds
    do = "fault.add"
    rule = { method = "Decode", action = "decode", after_chunks = 2, then = "error", token = "session_fatal" }

    [[step]]
    after_calls = 3           # or: once this many calls were answered since the start
    method = "OpenSession"    # … of this method only
    do = "node.kill"          # node.kill | node.wedge | node.resume | node.partition | node.heal
    node = "node1"            # default: the current leader

Steps run in file order; each waits for its own trigger (``at`` and / or ``after_calls``, none = at
once). ``do`` is one of: ``fault.add`` (``rule``), ``fault.remove`` (``id``), ``fault.clear``,
``lease.<op>`` (the operations of :mod:`modeld_sim.leasescript` with their parameters, plus
``lease.pause`` / ``lease.resume`` of the leader's renewals), ``node.<op>``, ``failover`` (``how`` =
kill / wedge / partition), ``mark`` (``text``, a line in the transcript), ``stop`` (end the scenario).

:func:`load` refuses an invalid file with :class:`ScenarioError`, whose text names the file, the line
and the field: ``leader.toml:14: step[2].rule.token: unknown sentinel 'stale'``.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from . import leasescript
from .cluster import NODE_OPS, Cluster
from .faults import FaultRuleError, parse_duration_field, parse_rule
from .leasescript import LeaseScriptError

__all__ = [
    "Scenario",
    "ScenarioError",
    "Step",
    "cli_main",
    "find",
    "load",
    "load_ref",
    "loads",
    "packaged",
    "packaged_dir",
    "run",
]

_STEP_KEYS: Final = frozenset(
    {"at", "after_calls", "method", "do", "rule", "id", "node", "how", "text"}
    | {p for params in leasescript.OPS.values() for p in params}
)
_TOP_KEYS: Final = frozenset({"scenario", "cluster", "step"})
_SCENARIO_KEYS: Final = frozenset({"name", "description", "duration"})
_CLUSTER_KEYS: Final = frozenset({"size", "ttl", "renew", "backend", "procs", "respawn"})
_BACKENDS: Final = ("llama", "openvino", "none")


class ScenarioError(ValueError):
    """An invalid scenario: ``line`` (1-based, 0 if unknown) and ``field`` (dotted path) say where."""

    def __init__(self, source: str, line: int, field: str, message: str) -> None:
        self.source = source
        self.line = line
        self.field = field
        self.reason = message
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


@dataclass
class Step:
    index: int
    do: str
    line: int = 0
    at: float | None = None
    after_calls: int | None = None
    method: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        trig = []
        if self.at is not None:
            trig.append(f"at {self.at:g}s")
        if self.after_calls is not None:
            trig.append(f"after {self.after_calls} {self.method or ''} calls".replace("  ", " "))
        return f"step[{self.index}] {self.do}" + (f" ({', '.join(trig)})" if trig else "")


@dataclass
class Scenario:
    name: str = ""
    description: str = ""
    duration: float | None = None
    size: int = 1
    ttl: float = 0.5
    renew: float | None = None
    backend: str = "llama"
    procs: bool = False
    respawn: bool = False
    steps: list[Step] = field(default_factory=list)
    source: str = "<scenario>"


# --- locating lines -------------------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*\[(\[)?\s*([A-Za-z0-9_.\-\" ]+?)\s*\]?\]\s*(#.*)?$")


class _Locator:
    """Finds the line of a key in the TOML text (tomllib does not keep positions)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        # (line number, table name, is_array)
        self.headers: list[tuple[int, str, bool]] = []
        for i, raw in enumerate(self.lines, 1):
            m = _HEADER.match(raw)
            if m:
                self.headers.append((i, m.group(2).replace('"', "").strip(), m.group(1) is not None))

    def _block(self, table: str, index: int | None) -> tuple[int, int]:
        """(first, last) line of ``[table]`` or of the index-th ``[[table]]`` incl. its subtables."""
        n = -1
        start = 0
        for pos, (ln, name, arr) in enumerate(self.headers):
            if name == table and (arr == (index is not None)):
                n += 1
                if index is None or n == index:
                    start = ln
                    end = len(self.lines)
                    for ln2, name2, arr2 in self.headers[pos + 1 :]:
                        if name2.startswith(table + ".") and not arr2:
                            continue
                        end = ln2 - 1
                        break
                    return start, end
        return 0, 0

    def _key_line(self, first: int, last: int, key: str) -> int:
        pat = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        for ln in range(first, last + 1):
            if pat.match(self.lines[ln - 1]):
                return ln
        return 0

    def find(self, table: str, index: int | None, keys: list[str]) -> int:
        first, last = self._block(table, index)
        if not first:
            return 0
        if not keys:
            return first
        ln = self._key_line(first + 1, last, keys[0])
        if ln:
            return ln  # inline table: the nested key is on this line
        if len(keys) > 1:  # [step.rule] subtable
            sub = f"{table}.{keys[0]}"
            for hl, name, arr in self.headers:
                if first <= hl <= last and name == sub and not arr:
                    k = self._key_line(hl + 1, last, keys[1])
                    return k or hl
        return first


# --- parsing --------------------------------------------------------------------------------------------


def packaged_dir() -> str:
    """Where the packaged scenarios live (``modeld_sim/scenarios/``)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")


def packaged() -> dict[str, str]:
    """The packaged scenarios: name (file name without ``.toml``) → path, sorted by name."""
    d = packaged_dir()
    try:
        names = sorted(f for f in os.listdir(d) if f.endswith(".toml"))
    except OSError:
        return {}
    return {f[: -len(".toml")]: os.path.join(d, f) for f in names}


def find(ref: str | os.PathLike[str]) -> str:
    """The file ``ref`` names: an existing path, else a packaged scenario's name (``.toml`` optional).

    Raises :class:`ScenarioError` naming both possibilities when it is neither."""
    p = os.fspath(ref)
    if os.path.exists(p):
        return p
    known = packaged()
    name = p[: -len(".toml")] if p.endswith(".toml") else p
    if name in known and os.sep not in name:
        return known[name]
    listing = ", ".join(known) or "none"
    raise ScenarioError(
        p, 0, "", f"no such file, nor a packaged scenario (packaged: {listing}; see modeld-sim scenario list)"
    )


def load_ref(ref: str | os.PathLike[str]) -> Scenario:
    """Load ``ref``: a path, or the name of a packaged scenario (:func:`find`)."""
    return load(find(ref))


def load(path: str | os.PathLike[str]) -> Scenario:
    p = os.fspath(path)
    with open(p, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(p, 0, "", f"not UTF-8: {exc}") from None
    return loads(text, source=p)


def _dur(name: str, v: Any, err: Callable[[str, str], ScenarioError]) -> float:
    try:
        return parse_duration_field(name, v)
    except FaultRuleError as exc:
        raise err(name, exc.reason) from None


def loads(text: str, *, source: str = "<scenario>") -> Scenario:
    """Parse and check a scenario; raises :class:`ScenarioError` naming line and field."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ScenarioError(source, int(m.group(1)) if m else 0, "", f"TOML syntax: {exc}") from None
    loc = _Locator(text)
    sc = Scenario(source=source)

    def top_err(table: str, key: str, msg: str) -> ScenarioError:
        return ScenarioError(
            source, loc.find(table, None, [key] if key else []), f"{table}.{key}" if key else table, msg
        )

    for k in doc:
        if k not in _TOP_KEYS:
            raise ScenarioError(
                source,
                loc._key_line(1, len(loc.lines), k) or loc.find(k, None, []),
                k,
                f"unknown table or key (known: {', '.join(sorted(_TOP_KEYS))})",
            )
    meta = doc.get("scenario", {})
    if not isinstance(meta, dict):
        raise top_err("scenario", "", "must be a table")
    for k, v in meta.items():
        if k not in _SCENARIO_KEYS:
            raise top_err("scenario", k, f"unknown key (known: {', '.join(sorted(_SCENARIO_KEYS))})")
        if k in ("name", "description") and not isinstance(v, str):
            raise top_err("scenario", k, f"want a string, got {v!r}")
    sc.name = str(meta.get("name", ""))
    sc.description = str(meta.get("description", ""))
    if "duration" in meta:
        sc.duration = _dur("duration", meta["duration"], lambda f, m: top_err("scenario", f, m))
    cl = doc.get("cluster", {})
    if not isinstance(cl, dict):
        raise top_err("cluster", "", "must be a table")
    for k in cl:
        if k not in _CLUSTER_KEYS:
            raise top_err("cluster", k, f"unknown key (known: {', '.join(sorted(_CLUSTER_KEYS))})")
    if "size" in cl:
        size = cl["size"]
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 64:
            raise top_err("cluster", "size", f"want an integer 1..64, got {size!r}")
        sc.size = size
    if "ttl" in cl:
        sc.ttl = _dur("ttl", cl["ttl"], lambda f, m: top_err("cluster", f, m))
        if sc.ttl <= 0:
            raise top_err("cluster", "ttl", "must be positive")
    if "renew" in cl:
        sc.renew = _dur("renew", cl["renew"], lambda f, m: top_err("cluster", f, m))
        if sc.renew <= 0 or sc.renew >= sc.ttl:
            raise top_err("cluster", "renew", "must be positive and shorter than the ttl")
    if "backend" in cl:
        if cl["backend"] not in _BACKENDS:
            raise top_err("cluster", "backend", f"one of {', '.join(_BACKENDS)}, got {cl['backend']!r}")
        sc.backend = str(cl["backend"])
    for flag in ("procs", "respawn"):
        if flag in cl:
            if not isinstance(cl[flag], bool):
                raise top_err("cluster", flag, f"want true or false, got {cl[flag]!r}")
            setattr(sc, flag, cl[flag])
    steps = doc.get("step", [])
    if not isinstance(steps, list):
        raise top_err("step", "", "use [[step]] (an array of tables)")
    for i, st in enumerate(steps):
        sc.steps.append(_parse_step(i, st, source, loc, sc))
    return sc


def _parse_step(i: int, st: Any, source: str, loc: _Locator, sc: Scenario) -> Step:
    def err(keys: list[str], msg: str) -> ScenarioError:
        return ScenarioError(source, loc.find("step", i, keys), ".".join([f"step[{i}]", *keys]), msg)

    if not isinstance(st, dict):
        raise err([], "must be a table")
    for k in st:
        if k not in _STEP_KEYS:
            raise err([k], f"unknown key (known: {', '.join(sorted(_STEP_KEYS))})")
    do = st.get("do")
    if not isinstance(do, str) or not do:
        raise err(["do"] if "do" in st else [], "missing or not a string: what the step does")
    step = Step(index=i, do=do, line=loc.find("step", i, []))
    if "at" in st:
        step.at = _dur("at", st["at"], lambda f, m: err([f], m))
    if "after_calls" in st:
        n = st["after_calls"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise err(["after_calls"], f"want an integer >= 1, got {n!r}")
        step.after_calls = n
    if "method" in st:
        from modeldconn.wire.methods import BY_NAME

        if st["method"] not in BY_NAME:
            raise err(["method"], f"unknown method {st['method']!r} (known: {', '.join(BY_NAME)})")
        if step.after_calls is None:
            raise err(["method"], "only meaningful with after_calls")
        step.method = str(st["method"])
    used = {"at", "after_calls", "method", "do"}

    def only(*allowed: str) -> None:
        for k in st:
            if k not in used and k not in allowed:
                raise err([k], f"not a parameter of {do!r}")

    if do == "fault.add":
        only("rule")
        rule = st.get("rule")
        if not isinstance(rule, dict):
            raise err(["rule"], "missing: a table describing the fault rule")
        try:
            parse_rule(rule, default_id=f"s{i}")
        except FaultRuleError as exc:
            raise err(["rule", exc.field] if exc.field else ["rule"], exc.reason) from None
        step.params = {"rule": rule}
    elif do == "fault.remove":
        only("id")
        if not isinstance(st.get("id"), str):
            raise err(["id"], "missing: the id of the rule to remove")
        step.params = {"id": st["id"]}
    elif do == "fault.clear":
        only()
    elif do.startswith("lease."):
        op = do[6:]
        if op in ("pause", "resume"):
            only("node")
            step.params = {k: st[k] for k in ("node",) if k in st}
        else:
            params = {k: v for k, v in st.items() if k not in used}
            if op not in leasescript.OPS:
                raise err(
                    ["do"],
                    f"unknown lease operation {op!r} "
                    f"(one of {', '.join([*leasescript.OPS, 'pause', 'resume'])})",
                )
            try:
                leasescript.check(op, params)
            except LeaseScriptError as exc:
                raise err([exc.field], exc.reason) from None
            step.params = params
    elif do.startswith("node."):
        op = do[5:]
        if op not in NODE_OPS:
            raise err(["do"], f"unknown node operation {op!r} (one of {', '.join(NODE_OPS)})")
        only("node")
        if "node" in st and not isinstance(st["node"], str):
            raise err(["node"], f'want a node name such as "node2", got {st["node"]!r}')
        step.params = {k: st[k] for k in ("node",) if k in st}
    elif do == "failover":
        only("how")
        how = st.get("how", "kill")
        if how not in ("kill", "wedge", "partition"):
            raise err(["how"], f"one of kill, wedge, partition, got {how!r}")
        step.params = {"how": how}
    elif do == "mark":
        only("text")
        if not isinstance(st.get("text"), str):
            raise err(["text"], "missing: the text to write into the transcript")
        step.params = {"text": st["text"]}
    elif do == "stop":
        only()
    else:
        raise err(
            ["do"],
            f"unknown action {do!r} (fault.add, fault.remove, fault.clear, lease.<op>, "
            "node.<op>, failover, mark, stop)",
        )
    return step


# --- running --------------------------------------------------------------------------------------------


async def run(
    scenario: Scenario,
    cluster: Cluster,
    *,
    log: Callable[[str], object] | None = None,
) -> None:
    """Play the timeline against a started cluster; returns after the last step (or ``stop``)."""
    say = log or (lambda _line: None)
    t0 = time.monotonic()
    base_total = cluster.faults.call_count()
    base_calls = dict(cluster.faults.calls)
    cluster.event("scenario.start", name=scenario.name, source=scenario.source)
    for step in scenario.steps:
        if step.at is not None:
            left = t0 + step.at - time.monotonic()
            if left > 0:
                await asyncio.sleep(left)
        if step.after_calls is not None:
            key = step.method
            base = base_total if key is None else base_calls.get(key, 0)
            await cluster.faults.wait_calls(base + step.after_calls, key)
        elapsed = time.monotonic() - t0
        say(f"modeld-sim scenario: {step.describe()} at +{elapsed * 1000:.0f}ms")
        cluster.event("scenario.step", step=step.index, do=step.do, elapsed_ms=round(elapsed * 1000, 3))
        try:
            stop = await _apply(step, cluster)
        except Exception as exc:  # a step failing (e.g. no leader to kill) is reported, the play goes on
            say(f"modeld-sim scenario: {step.describe()} failed: {exc}")
            cluster.event("scenario.error", step=step.index, error=str(exc))
            continue
        if stop:
            break
    cluster.event("scenario.end", name=scenario.name)


async def _apply(step: Step, cluster: Cluster) -> bool:
    do, p = step.do, step.params
    if do == "fault.add":
        rule_spec: Mapping[str, Any] = p["rule"]
        spec = dict(rule_spec)
        spec.setdefault("id", f"s{step.index}")
        rule = cluster.faults.add(spec)
        cluster.event("fault.add", rule=rule.describe())
    elif do == "fault.remove":
        cluster.faults.remove(p["id"])
        cluster.event("fault.remove", id=p["id"])
    elif do == "fault.clear":
        cluster.faults.clear()
        cluster.event("fault.clear")
    elif do == "lease.pause":
        cluster.pause_renewals(p.get("node"))
    elif do == "lease.resume":
        await cluster.resume_renewals(p.get("node"))
    elif do.startswith("lease."):
        await cluster.lease_op(do[6:], p)
    elif do.startswith("node."):
        await cluster.node_op(do[5:], p.get("node"))
    elif do == "failover":
        await cluster.failover(p.get("how", "kill"))
    elif do == "mark":
        cluster.event("mark", text=p["text"])
    elif do == "stop":
        return True
    return False


# --- CLI: modeld-sim scenario run|check -------------------------------------------------------------------


def cli_main(args: Any, out: Callable[[str, str], object]) -> int:
    if args.scenario_cmd == "list":
        return _list(out)
    try:
        sc = load_ref(args.scenario)
    except ScenarioError as exc:
        out("stderr", f"modeld-sim: {exc}")
        return 2
    except OSError as exc:
        out("stderr", f"modeld-sim: {args.scenario}: {exc.strerror or exc}")
        return 1
    if args.scenario_cmd == "check":
        out("stdout", f"{sc.source}: ok ({len(sc.steps)} steps)")
        return 0
    try:
        return asyncio.run(_run_cli(sc, args, out))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        out("stderr", f"modeld-sim scenario: {exc}")
        return 1


def _list(out: Callable[[str, str], object]) -> int:
    """``modeld-sim scenario list``: one line per packaged scenario, ``NAME  what it does``."""
    known = packaged()
    width = max((len(n) for n in known), default=0) + 2
    for name, path in known.items():
        try:
            sc = load(path)
        except (ScenarioError, OSError) as exc:  # a broken packaged file is named, the listing goes on
            out("stdout", f"{name:<{width}}(unreadable: {exc})")
            continue
        what = sc.description or sc.name
        where = f"{sc.size} node{'s' if sc.size != 1 else ''}, ttl {sc.ttl * 1000:g}ms"
        out("stdout", f"{name:<{width}}{what} ({where})")
    out("stderr", f"(files in {packaged_dir()}; run one: modeld-sim scenario run NAME)")
    return 0


async def _run_cli(sc: Scenario, args: Any, out: Callable[[str, str], object]) -> int:
    import contextlib
    import tempfile

    from .control import ControlServer
    from .transcript import Transcript

    tmp: tempfile.TemporaryDirectory[str] | None = None
    data_root = args.data_root
    if not data_root:
        tmp = tempfile.TemporaryDirectory(prefix="modeld-sim-scenario-")
        data_root = tmp.name
    transcript = Transcript(args.transcript) if (args.transcript or args.control) else None
    cluster = Cluster(
        data_root,
        sc.size,
        ttl=sc.ttl,
        renew=sc.renew,
        backend=sc.backend,
        procs=sc.procs,
        respawn=sc.respawn,
        transcript=transcript,
        transcript_path=args.transcript,
        log=out,
    )
    control: ControlServer | None = None
    try:
        lead = await cluster.start()
        out(
            "stdout",
            f"modeld-sim scenario: {sc.name or sc.source} data_root={data_root} leader={lead.name} "
            f"instance={lead.instance_id} endpoint={lead.endpoint}",
        )
        if args.control:
            control = ControlServer(cluster)
            await control.start()
            out("stdout", f"modeld-sim control: endpoint={control.endpoint} file={control.path}")
        t0 = time.monotonic()
        await run(sc, cluster, log=lambda s: out("stderr", s))
        if sc.duration is not None:
            left = t0 + sc.duration - time.monotonic()
            if left > 0:
                await asyncio.sleep(left)
        out("stdout", f"modeld-sim scenario: done after {(time.monotonic() - t0) * 1000:.0f}ms")
    finally:
        if control is not None:
            await control.stop()
        await cluster.stop()
        if transcript is not None:
            transcript.close()
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.cleanup()
    return 0
