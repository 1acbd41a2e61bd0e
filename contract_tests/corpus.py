"""The recorded-exchange corpus: load it, replay it against a target, and put replies in its form.

The corpus (``tests/corpus/``, format in its README) is what the real modeld v0.36.0 answered to a
fixed list of requests. Replaying it against the simulator is the cheapest fidelity check we have;
the recorder (``modeld_contract.real``) writes new recordings in the same form, so the request
filling and the reply normalisation live here, once, for both.

Nothing here decodes a reply with our codec: reply bodies are read with Python's JSON parser keeping
key order, because key order is part of what is compared.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modeld_contract.h2client import DEFAULT, RawGrpcClient, RawReply

SERVICE_PATH = "/contenox.transport.v1.Compute/"
JSON_CONTENT_TYPE = "application/grpc+contenoxtransportjson"
CORPUS_DIR = Path(__file__).resolve().parent.parent / "tests" / "corpus"
MODELD_CORPUS = CORPUS_DIR / "modeld-v0.36.0"
GO_CONNECTOR_CORPUS = CORPUS_DIR / "go-connector-v0.36.0"
TINY_GGUF_NAME = "tiny-llama-ctx256.gguf"
# Methods whose reply values may be machine facts (free memory, disk, devices): only there does the
# recording write `<machine>`, and only where it does is a value not compared.
MACHINE_METHODS = frozenset({"Describe", "DiskStats"})

_FILE_PLACEHOLDER = re.compile(r"<(CORRUPT_GGUF|TRUNCATED_GGUF): ([^>]*)>")


def observed(name: str) -> Path:
    """The project's copy of a file of the reference's ``observed/`` folder, by its file name."""
    folder = GO_CONNECTOR_CORPUS if name.startswith("go-connector") else MODELD_CORPUS
    return folder / name


@dataclass
class Case:
    """One line of a recording."""

    index: int
    name: str
    raw: dict[str, Any]

    @property
    def is_close(self) -> bool:
        return self.name.startswith("connection.close.")

    @property
    def is_info(self) -> bool:
        return self.name.startswith("info.")

    @property
    def method(self) -> str:
        return str(self.raw.get("method") or "")

    @property
    def request(self) -> dict[str, Any]:
        req = self.raw.get("request")
        return req if isinstance(req, dict) else {}

    @property
    def reply(self) -> dict[str, Any]:
        rep = self.raw.get("reply")
        return rep if isinstance(rep, dict) else {}


def load_cases(path: Path) -> list[Case]:
    """Every line of a recording, in file order (state carries over between them)."""
    cases = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if not line.strip():
                continue
            raw = json.loads(line)
            cases.append(Case(index=i, name=str(raw["case"]), raw=raw))
    return cases


@dataclass
class Placeholders:
    """The concrete values a replay substitutes for the recording's placeholders."""

    instance_id: str
    endpoint: str
    model: str = ""
    model_dir: str = ""
    tmp_dir: str = ""
    other_addr: str = "127.0.0.2:1"
    created: dict[str, str] = field(default_factory=dict)

    def fill(self, text: str) -> str:
        """Replace placeholders in a request string (files described by a placeholder are made)."""
        text = _FILE_PLACEHOLDER.sub(lambda m: self._make_file(m.group(1), m.group(2)), text)
        return (
            text.replace("<IID_UPPER>", self.instance_id.upper())
            .replace("<IID>", self.instance_id)
            .replace("<EP>", self.endpoint)
            .replace("<ADDR>", self.other_addr)
            .replace("<MODEL_DIR>", self.model_dir)
            .replace("<MODEL>", self.model)
        )

    def _make_file(self, kind: str, description: str) -> str:
        key = f"{kind}:{description}"
        if key in self.created:
            return self.created[key]
        target = Path(self.tmp_dir) / f"{kind.lower()}-{len(self.created)}.gguf"
        if kind == "CORRUPT_GGUF":
            # "the 15 bytes GGUF 03 00 00 00 'garbage'": the magic, version 3 LE, then 7 bytes of junk.
            target.write_bytes(b"GGUF" + bytes([3, 0, 0, 0]) + b"garbage")
        else:
            m = re.search(r"first (\d+) bytes", description)
            size = int(m.group(1)) if m else 4096
            with open(self.model, "rb") as src:
                target.write_bytes(src.read(size))
        self.created[key] = str(target)
        return str(target)

    def normalise(self, text: str) -> str:
        """Turn a reply string back into the recording's placeholders."""
        for path, name in sorted(
            ((p, f"<{k.split(':', 1)[0]}: {k.split(':', 1)[1]}>") for k, p in self.created.items()),
            key=lambda t: -len(t[0]),
        ):
            text = text.replace(path, name)
        if self.model:
            text = text.replace(self.model, "<MODEL>")
        if self.model_dir:
            text = text.replace(self.model_dir, "<MODEL_DIR>")
        if self.tmp_dir:
            text = re.sub(re.escape(self.tmp_dir) + r"[^\"\s:]*", "<TMP>", text)
        text = text.replace(self.endpoint, "<EP>")
        text = text.replace(self.instance_id.upper(), "<IID_UPPER>")
        return text.replace(self.instance_id, "<IID>")


def prepare_model(tmp_dir: Path) -> tuple[str, str]:
    """Copy the corpus's tiny GGUF into a folder of its own; returns (model path, model dir)."""
    model_dir = tmp_dir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    model = model_dir / TINY_GGUF_NAME
    shutil.copyfile(MODELD_CORPUS / TINY_GGUF_NAME, model)
    return str(model), str(model_dir)


def _fill_json(value: Any, ph: Placeholders) -> Any:
    if isinstance(value, str):
        return ph.fill(value)
    if isinstance(value, list):
        return [_fill_json(v, ph) for v in value]
    if isinstance(value, dict):
        return {k: _fill_json(v, ph) for k, v in value.items()}
    return value


def request_payloads(case: Case, ph: Placeholders) -> list[bytes] | None:
    """The exact message bytes of a case (``None``: a HEADERS frame that ends the stream)."""
    payloads = case.request.get("payloads")
    if payloads is None:
        return None
    out: list[bytes] = []
    for p in payloads:
        if "json" in p:
            # Sent compactly, as Go writes it; non-ASCII raw (Go's encoder does not escape it).
            out.append(
                json.dumps(_fill_json(p["json"], ph), separators=(",", ":"), ensure_ascii=False).encode()
            )
        elif "text" in p:
            out.append(ph.fill(p["text"]).encode("utf-8", "surrogateescape"))
        elif "b64" in p:
            out.append(base64.b64decode(p["b64"]))
        else:
            raise ValueError(f"{case.name}: unknown payload form {p!r}")
    return out


def _ordered(data: bytes) -> Any:
    """Parse JSON keeping key order, as a comparable structure."""
    return json.loads(data, object_pairs_hook=lambda pairs: {"__pairs__": pairs})


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict) and "__pairs__" in value:
        return {k: _to_plain(v) for k, v in value["__pairs__"]}
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    return value


def _decode_details(raw: bytes) -> dict[str, Any]:
    from google.protobuf import any_pb2  # noqa: F401  (registers Any)
    from google.rpc import error_details_pb2, status_pb2

    st = status_pb2.Status.FromString(raw)
    details: list[dict[str, Any]] = []
    for d in st.details:
        entry: dict[str, Any] = {"type": d.type_url}
        if d.type_url.endswith("google.rpc.ErrorInfo"):
            info = error_details_pb2.ErrorInfo.FromString(d.value)
            entry.update(
                {
                    "reason": info.reason,
                    "domain": info.domain,
                    "metadata": dict(sorted(info.metadata.items())),
                }
            )
        details.append(entry)
    return {"code": st.code, "message": st.message, "details": details}


def reply_record(case: Case, reply: RawReply, ph: Placeholders) -> dict[str, Any]:
    """A raw reply in the recording's form, placeholders restored (key order kept in bodies)."""
    out: dict[str, Any] = {
        "code": reply.code,
        "message": None if reply.message is None else ph.normalise(reply.message),
    }
    if reply.messages or (reply.code == 0):
        msgs = []
        for m in reply.messages:
            try:
                msgs.append(_normalise_value(_to_plain(_ordered(m)), ph))
            except ValueError:
                msgs.append({"__undecodable__": m.decode("utf-8", "replace")})
        out["messages"] = msgs
    if reply.details:
        det = _decode_details(reply.details)
        det["message"] = ph.normalise(det["message"])
        out["details"] = det
    if reply.http_status is not None and reply.http_status != 200:
        out["http_status"] = str(reply.http_status)
    if reply.content_type is not None and reply.content_type != JSON_CONTENT_TYPE:
        out["content_type"] = reply.content_type
    if reply.timed_out:
        out["timed_out"] = True
    return out


def _normalise_value(value: Any, ph: Placeholders) -> Any:
    if isinstance(value, str):
        return ph.normalise(value)
    if isinstance(value, list):
        return [_normalise_value(v, ph) for v in value]
    if isinstance(value, dict):
        return {k: _normalise_value(v, ph) for k, v in value.items()}
    return value


def mask_machine(expected: Any, actual: Any) -> Any:
    """Where the recording says ``<machine>``, take the recording's word (the key must exist)."""
    if expected == "<machine>":
        return "<machine>"
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {k: (mask_machine(expected[k], v) if k in expected else v) for k, v in actual.items()}
    if isinstance(expected, list) and isinstance(actual, list):
        return [mask_machine(e, a) for e, a in zip(expected, actual, strict=False)] + actual[len(expected) :]
    return actual


def comparable(case: Case, recorded: dict[str, Any], actual: dict[str, Any]) -> tuple[Any, Any]:
    """The two sides as compared: every key of the recorded reply, with key order of bodies kept."""
    keys = ("code", "message", "messages", "details", "http_status", "content_type")
    want = {k: recorded.get(k) for k in keys}
    got = {k: actual.get(k) for k in want}
    if want["messages"] is None and got["messages"] == []:
        got["messages"] = None
    if case.method in MACHINE_METHODS and isinstance(want["messages"], list):
        got["messages"] = mask_machine(want["messages"], got["messages"])
    # Key order matters: compare the JSON texts, which keep it.
    return json.dumps(want, ensure_ascii=False), json.dumps(got, ensure_ascii=False)


async def replay_case(client: RawGrpcClient, case: Case, ph: Placeholders, timeout: float = 10.0) -> RawReply:
    """Send one case exactly as recorded (or close its named connection)."""
    if case.is_close:
        await client.close_connection(case.name.removeprefix("connection.close."))
        return RawReply()
    req = case.request
    path = req.get("path") or SERVICE_PATH + case.method
    ct: Any = DEFAULT
    if "content_type" in req:
        ct = req["content_type"]
    metadata: Sequence[tuple[str, str]] = [(k, ph.fill(v)) for k, v in req.get("metadata") or []]
    return await client.call(
        path,
        request_payloads(case, ph),
        content_type=ct,
        metadata=metadata,
        connection=req.get("connection"),
        timeout=timeout,
    )


def side_by_side(case: Case, ph: Placeholders, want: str, got: str) -> str:
    """A failure report one can read once: the case, the request, both replies."""
    return (
        f"case {case.name!r} (line {case.index + 1}) differs\n"
        f"request: {json.dumps(case.request, ensure_ascii=False)[:2000]}\n"
        f"recorded: {want}\n"
        f"ours:     {got}"
    )
