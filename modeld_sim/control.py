"""The control plane for CI: HTTP + JSON on loopback, protected by a token in the data root.

:class:`ControlServer` serves a :class:`~modeld_sim.cluster.Cluster` (one node for ``modeld-sim serve
--control``). On start it writes ``<data_root>/modeld-sim.control`` — mode 0600, written atomically,
the one extra file the simulator puts in a data root, and only while the control plane runs::

    {"endpoint": "127.0.0.1:40555", "token": "<43 random url-safe characters>", "pid": 4242}

Every request needs ``Authorization: Bearer <token>``; without it (or with a wrong one) the answer
is ``401`` ``{"error": "unauthorized"}``. Bodies are JSON; answers are JSON (the transcript is JSON
lines). The routes are in docs/control-plane.md; :class:`ControlClient` wraps them
(``ControlClient.from_data_root(root)``), and ``modeld-sim ctl`` wraps the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import http.client
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from . import leasescript
from .cluster import FAILOVER_HOWS, NODE_OPS, Cluster, ClusterError
from .faults import FaultRuleError
from .leasescript import LeaseScriptError

__all__ = [
    "CONTROL_FILE_NAME",
    "ControlClient",
    "ControlError",
    "ControlServer",
    "ServeExtras",
    "cli_main",
    "control_path",
    "read_control_file",
    "remove_stale_control_file",
]

CONTROL_FILE_NAME: Final = "modeld-sim.control"
_MAX_BODY: Final = 1 << 20
_STOP_GRACE_S: Final = 10.0
# A request must arrive whole within this many seconds, however slowly its lines trickle in, and no
# more than this many connections are served at once: an unauthenticated client cannot pin sockets
# and file descriptors by sending a header line every few seconds.
_READ_DEADLINE_S: Final = 10.0
_MAX_CONNECTIONS: Final = 32
_MAX_HEADER_LINES: Final = 100
_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    408: "Request Timeout",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class ControlError(RuntimeError):
    """An error answer from the control plane (``status`` = HTTP status, ``body`` = its JSON)."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(f"control plane: {status} {message}")
        self.status = status
        self.message = message
        self.body = body


def control_path(data_root: str | os.PathLike[str]) -> str:
    return os.path.join(os.fspath(data_root), CONTROL_FILE_NAME)


def read_control_file(data_root: str | os.PathLike[str]) -> dict[str, Any]:
    with open(control_path(data_root), encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or "endpoint" not in doc or "token" not in doc:
        raise ValueError(f"{control_path(data_root)}: not a control file")
    return doc


def remove_stale_control_file(data_root: str | os.PathLike[str]) -> bool:
    """Remove a control file whose simulator is gone (a SIGKILL leaves it behind, with a token and an
    endpoint nobody serves any more); True when one was removed. A file of a live process stays."""
    try:
        doc = read_control_file(data_root)
        pid = int(doc.get("pid", 0))
    except FileNotFoundError:
        return False
    except (OSError, ValueError, TypeError):
        pid = 0  # unreadable or not ours to trust: nothing can be served through it
    if pid > 0:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pass
        except PermissionError:
            return False  # alive, another user's
        else:
            return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(control_path(data_root))
    return True


def _write_private(path: str, data: bytes) -> None:
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{CONTROL_FILE_NAME}-{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class _HttpError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def _node_name(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _HttpError(400, f'node: want a node name such as "node2", got {value!r}', field="node")
    return value


Handler = Callable[[dict[str, Any], dict[str, list[str]]], Awaitable[Any]]


class ControlServer:
    """HTTP-JSON control service for ``cluster`` on ``host:port`` (loopback, any free port)."""

    def __init__(self, cluster: Cluster, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.cluster = cluster
        self.host = host
        self.port = port
        self.token = secrets.token_urlsafe(32)
        self.path = control_path(cluster.data_root)
        self._server: asyncio.Server | None = None
        self._active: set[asyncio.Task[Any]] = set()
        self.read_deadline_s = _READ_DEADLINE_S
        self.max_connections = _MAX_CONNECTIONS
        self._routes: dict[tuple[str, str], Handler] = {
            ("GET", "/v1/status"): self._status,
            ("GET", "/v1/faults"): self._faults_list,
            ("POST", "/v1/faults"): self._faults_add,
            ("DELETE", "/v1/faults"): self._faults_clear,
            ("GET", "/v1/transcript"): self._transcript,
            ("POST", "/v1/mark"): self._mark,
            ("POST", "/v1/failover"): self._failover,
            ("GET", "/v1/lease"): self._lease_show,
        }

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._conn, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        doc = {"endpoint": self.endpoint, "token": self.token, "pid": os.getpid()}
        os.makedirs(self.cluster.data_root, 0o700, exist_ok=True)
        _write_private(self.path, json.dumps(doc).encode())

    async def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            doc = read_control_file(self.cluster.data_root)
            if doc.get("token") == self.token:
                os.unlink(self.path)
        if self._server is not None:
            self._server.close()
            # a request that ended the simulator (kill, a resume that finds the lease lost) still gets
            # its answer: the ones in flight finish before the plane goes
            busy = {t for t in self._active if t is not asyncio.current_task()}
            if busy:
                await asyncio.wait(busy, timeout=_STOP_GRACE_S)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1.0)
            self._server = None

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- HTTP -------------------------------------------------------------------------------------------

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._active.add(task)
            task.add_done_callback(self._active.discard)
        try:
            if len(self._active) > self.max_connections:
                status, body, ctype = self._err(503, "too many control connections")
            else:
                status, body, ctype = await self._one(reader)
        except TimeoutError:
            status, body, ctype = self._err(
                408, f"the request did not arrive within {self.read_deadline_s:g} s"
            )
        except Exception as exc:  # never let a bad request take the simulator down
            status, body, ctype = 500, json.dumps({"error": str(exc)}).encode(), "application/json"
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(Exception):
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()
            await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader) -> tuple[int, bytes, str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_deadline_s

        def left() -> float:
            return max(0.0, deadline - loop.time())

        line = await asyncio.wait_for(reader.readline(), timeout=left())
        parts = line.decode("latin-1").split()
        if len(parts) < 2:
            return self._err(400, "bad request line")
        method, target = parts[0].upper(), parts[1]
        headers: dict[str, str] = {}
        while True:
            h = await asyncio.wait_for(reader.readline(), timeout=left())
            if h in (b"\r\n", b"\n", b""):
                break
            if len(headers) >= _MAX_HEADER_LINES:
                return self._err(431, "too many header lines")
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        auth = headers.get("authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            return self._err(401, "unauthorized")
        try:
            length = int(headers.get("content-length", "0") or "0")
        except ValueError:
            return self._err(400, "bad content-length")
        if length > _MAX_BODY:
            return self._err(413, "body too large")
        raw = await asyncio.wait_for(reader.readexactly(length), timeout=left()) if length else b""
        try:
            doc = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            return self._err(400, f"body is not JSON: {exc}")
        if not isinstance(doc, dict):
            return self._err(400, "body must be a JSON object")
        url = urlsplit(target)
        query = parse_qs(url.query)
        try:
            result = await self._dispatch(method, url.path, doc, query)
        except _HttpError as exc:
            return self._err(exc.status, exc.message, **exc.extra)
        except (FaultRuleError, LeaseScriptError) as exc:
            return self._err(400, str(exc), field=exc.field)
        except ClusterError as exc:
            return self._err(409, str(exc))
        if isinstance(result, bytes):
            return 200, result, "application/x-ndjson"
        return 200, json.dumps(result, ensure_ascii=False).encode(), "application/json"

    @staticmethod
    def _err(status: int, message: str, **extra: Any) -> tuple[int, bytes, str]:
        return status, json.dumps({"error": message, **extra}).encode(), "application/json"

    async def _dispatch(
        self, method: str, path: str, body: dict[str, Any], query: dict[str, list[str]]
    ) -> Any:
        handler = self._routes.get((method, path))
        if handler is not None:
            return await handler(body, query)
        segs = [s for s in path.split("/") if s]
        if len(segs) == 3 and segs[:2] == ["v1", "faults"] and method == "DELETE":
            if not self.cluster.faults.remove(segs[2]):
                raise _HttpError(404, f"no fault rule {segs[2]!r}")
            self.cluster.event("fault.remove", id=segs[2])
            return {"removed": segs[2]}
        if len(segs) == 3 and segs[:2] == ["v1", "lease"] and method == "POST":
            return await self._lease(segs[2], body)
        if len(segs) == 3 and segs[:2] == ["v1", "nodes"] and method == "POST":
            return await self._node(segs[2], body)
        if any(p == path for _, p in self._routes):
            raise _HttpError(405, f"method {method} not allowed on {path}")
        raise _HttpError(404, f"no route {method} {path}")

    # -- routes -------------------------------------------------------------------------------------------

    async def _status(self, body: dict[str, Any], query: dict[str, list[str]]) -> Any:
        return self.cluster.status()

    async def _faults_list(self, body: dict[str, Any], query: dict[str, list[str]]) -> Any:
        return {"rules": self.cluster.faults.describe()}

    async def _faults_add(self, body: dict[str, Any], query: dict[str, list[str]]) -> Any:
        rule = self.cluster.faults.add(body)
        self.cluster.event("fault.add", rule=rule.describe())
        return rule.describe()

    async def _faults_clear(self, body: dict[str, Any], query: dict[str, list[str]]) -> Any:
        n = self.cluster.faults.clear()
        self.cluster.event("fault.clear", removed=n)
        return {"removed": n}

    async def _transcript(self, body: dict[str, Any], query: dict[str, list[str]]) -> Any:
        t = self.cluster.transcript
        if t is None:
            raise _HttpError(409, "no transcript is being kept (start with --transcript or --control)")
        raw = (query.get("since") or ["0"])[0] or "0"
        try:
            since = int(raw)
        except ValueError:
            raise _HttpError(400, f"since: want a sequence number, got {raw!r}", field="since") from None
        return t.dump_jsonl(since).encode("utf-8")

    async def _mark(self, body: dict[str, Any], query: dict[str, list[str]]) -> Any:
        text = body.get("text", "")
        if not isinstance(text, str):
            raise _HttpError(400, "text: want a string", field="text")
        self.cluster.event("mark", text=text)
        return {"ok": True}

    async def _failover(self, body: dict[str, Any], query: dict[str, list[str]]) -> Any:
        how = body.get("how", "kill")
        if how not in FAILOVER_HOWS:
            raise _HttpError(400, f"how: one of {', '.join(FAILOVER_HOWS)}, got {how!r}", field="how")
        timeout = body.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise _HttpError(400, "timeout: want seconds > 0", field="timeout")
        return await self.cluster.failover(str(how), None if timeout is None else float(timeout))

    async def _lease_show(self, body: dict[str, Any], query: dict[str, list[str]]) -> Any:
        return {"lease": leasescript.describe(self.cluster.lease.read())}

    async def _lease(self, op: str, body: dict[str, Any]) -> Any:
        name = _node_name(body.pop("node", None))
        if op in ("pause", "resume"):
            if body:
                raise _HttpError(400, f"lease {op} takes only node", field=next(iter(body)))
            if op == "pause":
                nodes = [self.cluster.pause_renewals(name)]
            else:
                nodes = await self.cluster.resume_renewals(name)
            return {
                "nodes": [n.name for n in nodes],
                "renewals": "paused" if op == "pause" else "running",
                "leader": self._leader_name(),
            }
        pause = body.pop("pause", False)
        if not isinstance(pause, bool):
            raise _HttpError(400, f"pause: want true or false, got {pause!r}", field="pause")
        await self.cluster.lease_op(op, body, pause=pause, node=name)
        return {
            "op": op,
            "lease": leasescript.describe(self.cluster.lease.read()),
            "leader": self._leader_name(),
        }

    def _leader_name(self) -> str | None:
        lead = self.cluster.leader
        return None if lead is None else lead.name

    async def _node(self, op: str, body: dict[str, Any]) -> Any:
        if op not in NODE_OPS:
            raise _HttpError(404, f"unknown node operation {op!r} (one of {', '.join(NODE_OPS)})")
        node = await self.cluster.node_op(op, _node_name(body.get("node")))
        return node.describe()


# --- client --------------------------------------------------------------------------------------------


class ControlClient:
    """Blocking client of a :class:`ControlServer` (call it from a thread inside an event loop)."""

    def __init__(self, endpoint: str, token: str, *, timeout: float = 30.0) -> None:
        host, _, port = endpoint.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_data_root(cls, data_root: str | os.PathLike[str], *, timeout: float = 30.0) -> ControlClient:
        doc = read_control_file(data_root)
        return cls(str(doc["endpoint"]), str(doc["token"]), timeout=timeout)

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            payload = b"" if body is None else json.dumps(dict(body)).encode()
            headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            ctype = resp.getheader("Content-Type", "")
        finally:
            conn.close()
        if resp.status != 200:
            text = data.decode("utf-8", "replace")
            try:
                doc = json.loads(data)
            except ValueError:
                doc = None
            msg = str(doc["error"]) if isinstance(doc, dict) and "error" in doc else text
            raise ControlError(resp.status, msg, doc)
        if ctype.startswith("application/x-ndjson"):
            return data.decode("utf-8")
        return json.loads(data) if data else None

    # -- conveniences ------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = self.request("GET", "/v1/status")
        return out

    def fault_add(self, rule: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self.request("POST", "/v1/faults", rule)
        return out

    def fault_list(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.request("GET", "/v1/faults")["rules"]
        return out

    def fault_remove(self, rule_id: str) -> None:
        self.request("DELETE", f"/v1/faults/{rule_id}")

    def fault_clear(self) -> int:
        return int(self.request("DELETE", "/v1/faults")["removed"])

    def lease(self, op: str, **params: Any) -> dict[str, Any]:
        out: dict[str, Any] = self.request("POST", f"/v1/lease/{op}", params)
        return out

    def lease_show(self) -> dict[str, Any] | None:
        out: dict[str, Any] | None = self.request("GET", "/v1/lease")["lease"]
        return out

    def node(self, op: str, node: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = self.request("POST", f"/v1/nodes/{op}", {} if node is None else {"node": node})
        return out

    def failover(self, how: str = "kill", timeout: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"how": how}
        if timeout is not None:
            body["timeout"] = timeout
        out: dict[str, Any] = self.request("POST", "/v1/failover", body)
        return out

    def transcript(self, since: int = 0) -> list[dict[str, Any]]:
        text = self.request("GET", f"/v1/transcript?since={since}")
        return [json.loads(line) for line in str(text).splitlines() if line.strip()]

    def transcript_text(self, since: int = 0) -> str:
        return str(self.request("GET", f"/v1/transcript?since={since}"))

    def mark(self, text: str) -> None:
        self.request("POST", "/v1/mark", {"text": text})


# --- modeld-sim serve --scenario / --control / --transcript ---------------------------------------------


class ServeExtras:
    """What ``serve`` adds for failure injection: fault hooks, transcript, control plane, scenario."""

    def __init__(self, cluster: Cluster, out: Callable[[str, str], object]) -> None:
        self.cluster = cluster
        self.out = out
        self.control: ControlServer | None = None
        self.scenario: Any = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def begin(cls, args: Any, sim: Any, out: Callable[[str, str], object]) -> ServeExtras:
        from .scenario import load_ref
        from .transcript import Transcript

        scenario = load_ref(args.scenario) if args.scenario else None  # ScenarioError names line and field
        transcript = Transcript(args.transcript) if (args.transcript or args.control) else None
        self = cls(Cluster.attach(sim, transcript=transcript, name=args.node_name), out)
        self.scenario = scenario
        if args.control:
            self.control = ControlServer(self.cluster)
            await self.control.start()
            out("stderr", f"modeld-sim control: endpoint={self.control.endpoint} file={self.control.path}")
        return self

    def owner_started(self) -> None:
        node = self.cluster.nodes[0]
        self.cluster.event("leader", node=node.name, instance=node.instance_id, endpoint=node.endpoint)
        if self.scenario is not None:
            from .scenario import run

            self._task = asyncio.get_running_loop().create_task(
                run(self.scenario, self.cluster, log=lambda s: self.out("stderr", s))
            )

    async def end(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.control is not None:
            await self.control.stop()
            self.control = None
        if self.cluster.transcript is not None:
            self.cluster.transcript.close()


# --- modeld-sim ctl ----------------------------------------------------------------------------------------

_CTL_USAGE: Final = (
    "usage: modeld-sim ctl [--data-root D] status | fault add k=v… | fault add --json OBJ | fault list | "
    "fault rm ID | fault clear | lease OP [k=v…] [--pause] | lease pause|resume [node=NAME] | lease show | "
    "failover [kill|wedge|partition] | "
    "kill|wedge|resume|partition|heal [NODE] | transcript [--since N] [--out FILE] | mark TEXT"
)


def cli_main(args: Any, out: Callable[[str, str], object]) -> int:
    from .leasescript import parse_kv

    words = list(args.ctl_args)
    if not words or words[0] in ("-h", "--help", "help"):
        out("stdout" if words else "stderr", _CTL_USAGE)
        return 0 if words else 2
    try:
        client = ControlClient.from_data_root(args.data_root)
    except (OSError, ValueError) as exc:
        out(
            "stderr",
            f"modeld-sim ctl: no control plane at {args.data_root} "
            f"(start with --control / modeld-sim cluster): {exc}",
        )
        return 1
    cmd, rest = words[0], words[1:]
    try:
        result: Any
        if cmd == "status":
            result = client.status()
        elif cmd == "fault":
            sub = rest[0] if rest else ""
            if sub == "add":
                if rest[1:2] == ["--json"] and len(rest) == 3:
                    try:
                        spec = json.loads(rest[2])
                    except ValueError as exc:
                        out("stderr", f"modeld-sim ctl: fault add --json: not JSON: {exc}")
                        return 2
                else:
                    spec = parse_kv(rest[1:])
                result = client.fault_add(spec)
            elif sub in ("list", "ls"):
                result = client.fault_list()
            elif sub in ("rm", "remove") and len(rest) == 2:
                client.fault_remove(rest[1])
                result = {"removed": rest[1]}
            elif sub == "clear":
                result = {"removed": client.fault_clear()}
            else:
                out("stderr", _CTL_USAGE)
                return 2
        elif cmd == "lease":
            if not rest:
                out("stderr", _CTL_USAGE)
                return 2
            if rest[0] == "show":
                result = client.lease_show()
            else:
                pause = "--pause" in rest
                params = parse_kv([w for w in rest[1:] if w != "--pause"])
                if pause:
                    params["pause"] = True
                result = client.lease(rest[0], **params)
        elif cmd == "failover":
            result = client.failover(rest[0] if rest else "kill")
        elif cmd in ("kill", "wedge", "resume", "partition", "heal"):
            result = client.node(cmd, rest[0] if rest else None)
        elif cmd == "transcript":
            since, target = 0, None
            it = iter(rest)
            for w in it:
                if w == "--since":
                    raw = next(it, "")
                    if not raw.isdigit():
                        out("stderr", f"modeld-sim ctl: transcript --since wants a number, got {raw!r}")
                        return 2
                    since = int(raw)
                elif w == "--out":
                    target = next(it, None)
                elif w != "dump":
                    out("stderr", _CTL_USAGE)
                    return 2
            text = client.transcript_text(since)
            if target:
                # the transcript carries fence values: the copy is as private as the original
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(text)
                result = {"written": target, "lines": text.count("\n")}
            else:
                sys.stdout.write(text)
                sys.stdout.flush()
                return 0
        elif cmd == "mark":
            client.mark(" ".join(rest))
            result = {"ok": True}
        else:
            out("stderr", _CTL_USAGE)
            return 2
    except ControlError as exc:
        out("stderr", f"modeld-sim ctl: {exc.message} (HTTP {exc.status})")
        return 2 if exc.status in (400, 404, 405) else 1
    except LeaseScriptError as exc:  # a word that is not key=value
        out("stderr", f"modeld-sim ctl: {exc.field}: {exc.reason}")
        return 2
    except (ConnectionError, TimeoutError) as exc:  # a control file left by a simulator that died
        out(
            "stderr",
            f"modeld-sim ctl: the control plane at {client.host}:{client.port} (from "
            f"{control_path(args.data_root)}) does not answer; is the simulator still running? {exc}",
        )
        return 1
    except (OSError, ValueError) as exc:
        out("stderr", f"modeld-sim ctl: {exc}")
        return 1
    out("stdout", json.dumps(result, indent=2, ensure_ascii=False))
    return 0
