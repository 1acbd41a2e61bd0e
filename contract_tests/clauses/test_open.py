"""C-OPEN: lease-resolved calls against a live owner — status, the slot, describe, embed, node admin.

What the daemon holds is read independently of the connector under test: the lease (through the
target) and the daemon's own answers to the harness's raw, fenced calls (``_util.Observer``). A
connector's answer is compared with those, never with its own other answers.

Sources: edge-cases.md §C, §E, §F (slot), session-semantics.md §2, §3, §7,
real-daemon-observations.md (slot, store)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from modeld_contract.clauses._util import Observer, empty_slot, float32, raises_kind

clause = pytest.mark.clause
CFG = {"NumCtx": 128}


@clause("C-OPEN-01", source="edge-cases.md:43")
def test_C_OPEN_01_status_reaches_the_lease_owner(modeld: Any) -> None:
    """status() reaches the owner the lease names (owner instance and backend, from the lease) and
    reports what the daemon answers (state)."""
    st = modeld.conn.status()
    assert st.get("owner_instance_id") == modeld.target.instance_id, st
    assert st.get("backend") == modeld.backend, st
    assert st.get("state", "") == Observer(modeld.target).status().get("state", ""), st


@clause("C-OPEN-02", source="edge-cases.md:84,109")
def test_C_OPEN_02_open_session_activates_the_model(modeld: Any) -> None:
    """open_session on an empty slot loads the model: the daemon's Status is Ready/Busy with a
    generation > 0, and the connector's status() reports the same."""
    empty_slot(modeld.conn)
    sid = modeld.conn.open_session(modeld.model, CFG)
    seen = Observer(modeld.target).status()
    assert seen.get("state") in ("Ready", "Busy"), seen
    gen = int((seen.get("active") or {}).get("generation") or 0)
    assert gen > 0, seen
    st = modeld.conn.status()
    assert (st.get("state"), int((st.get("active") or {}).get("generation") or 0)) == (seen["state"], gen), st
    modeld.conn.close_session(sid)


@clause("C-OPEN-03", source="session-semantics.md §2.1; real-daemon-observations.md (model_busy)")
def test_C_OPEN_03_second_open_is_model_busy(modeld: Any) -> None:
    """A second open while a handle is open → model_busy, for the same model too (no retry)."""
    sid = modeld.conn.open_session(modeld.model, CFG)
    assert raises_kind(lambda: modeld.conn.open_session(modeld.model, CFG)).kind == "model_busy"
    modeld.conn.close_session(sid)


@clause("C-OPEN-04", source="session-semantics.md §7; real-daemon-observations.md (switch + retry)")
def test_C_OPEN_04_switch_required_loads_and_retries(modeld: Any) -> None:
    """Another Config while a model is resident and no handle open: the connector loads and retries once."""
    sid = modeld.conn.open_session(modeld.model, CFG)
    modeld.conn.close_session(sid)
    sid2 = modeld.conn.open_session(modeld.model, {"NumCtx": 64})
    active = Observer(modeld.target).status().get("active") or {}
    assert int((active.get("config") or {}).get("NumCtx") or 0) == 64, active
    assert modeld.conn.explain_context(sid2)["NumCtx"] == 64
    modeld.conn.close_session(sid2)


@clause("C-OPEN-05", source="edge-cases.md:84")
def test_C_OPEN_05_load_model_generation(modeld: Any) -> None:
    """load_model → the generation the daemon activated (> 0, its Status Ready with it); a session
    opens on it."""
    am = modeld.conn.load_model(modeld.model, CFG)
    gen = int(am["generation"])
    seen = Observer(modeld.target).status()
    assert seen.get("state") == "Ready", seen
    assert gen == int((seen.get("active") or {}).get("generation") or 0) > 0, (am, seen)
    assert am.get("model_name") == modeld.model["model_name"], am
    sid = modeld.conn.open_session(modeld.model, CFG)
    modeld.conn.close_session(sid)


@clause("C-OPEN-06", source="edge-cases.md:84,111")
def test_C_OPEN_06_load_other_model_while_held_is_busy(modeld: Any) -> None:
    """load_model of another model while a handle is open → model_busy."""
    sid = modeld.conn.open_session(modeld.model, CFG)
    assert raises_kind(lambda: modeld.conn.load_model(modeld.model, {"NumCtx": 64})).kind == "model_busy"
    modeld.conn.close_session(sid)


@clause("C-OPEN-07", source="edge-cases.md:84,113")
def test_C_OPEN_07_unload_with_current_generation(modeld: Any) -> None:
    """unload_model(current generation) after close succeeds; the slot is Empty."""
    gen = int(modeld.conn.load_model(modeld.model, CFG)["generation"])
    modeld.conn.unload_model(gen)
    assert Observer(modeld.target).status().get("state", "Empty") in ("", "Empty")


@clause("C-OPEN-08", source="edge-cases.md:113")
def test_C_OPEN_08_unload_with_wrong_generation_is_stale(modeld: Any) -> None:
    """unload_model(generation + 1) → slot_generation_stale."""
    gen = int(modeld.conn.load_model(modeld.model, CFG)["generation"])
    assert raises_kind(lambda: modeld.conn.unload_model(gen + 1)).kind == "slot_generation_stale"


@clause("C-OPEN-09", source="edge-cases.md:122; session-semantics.md §4.7")
def test_C_OPEN_09_reopen_after_close(modeld: Any) -> None:
    """After close_session, the same identity opens again (the resident model is reused)."""
    obs = Observer(modeld.target)
    sid = modeld.conn.open_session(modeld.model, CFG)
    gen = int((obs.status().get("active") or {}).get("generation") or 0)
    modeld.conn.close_session(sid)
    sid2 = modeld.conn.open_session(modeld.model, CFG)
    assert int((obs.status().get("active") or {}).get("generation") or 0) == gen > 0
    modeld.conn.close_session(sid2)


@clause("C-OPEN-10", source="edge-cases.md:62; session-semantics.md §3.7")
def test_C_OPEN_10_describe_reports_context_budget(modeld: Any) -> None:
    """describe with NumCtx 128 → effective_context 128 and the model_max_context the daemon answers
    the same question with."""
    info = modeld.conn.describe(modeld.model, CFG)
    seen = Observer(modeld.target).describe(modeld.model, CFG)
    assert int(info["effective_context"]) == int(seen["effective_context"]) == 128, (info, seen)
    assert int(info["model_max_context"]) == int(seen["model_max_context"]) >= 128, (info, seen)


@clause("C-OPEN-11", source="edge-cases.md:83,123")
def test_C_OPEN_11_embed_returns_a_vector(modeld: Any) -> None:
    """embed returns exactly the vector the daemon computes for the text (every element, at the wire's
    float32 precision; on a slot with no explicit model); while a handle is held it is model_busy."""
    empty_slot(modeld.conn)  # an explicitly loaded model (a shared daemon's earlier clause) → model_busy
    vec = modeld.conn.embed(modeld.model, CFG, "hello")
    want = Observer(modeld.target).embed(modeld.model, CFG, "hello")
    assert want, "the daemon's own Embed answered no vector"
    assert [float32(x) for x in vec] == [float32(x) for x in want], (vec[:8], want[:8])
    sid = modeld.conn.open_session(modeld.model, CFG)
    assert raises_kind(lambda: modeld.conn.embed(modeld.model, CFG, "x")).kind == "model_busy"
    modeld.conn.close_session(sid)


@clause("C-OPEN-12", source="edge-cases.md:124; session-semantics.md §3.1")
def test_C_OPEN_12_unknown_model_is_not_found(modeld: Any) -> None:
    """A name the models dir does not hold (no path) → model_not_found, for open, describe and load."""
    empty_slot(modeld.conn)  # Describe of the resident identity answers from the slot
    ref = {"model_name": "no-such-model", "type": "llama"}
    assert raises_kind(lambda: modeld.conn.open_session(ref, CFG)).kind == "model_not_found"
    assert raises_kind(lambda: modeld.conn.describe(ref, CFG)).kind == "model_not_found"
    assert raises_kind(lambda: modeld.conn.load_model(ref, CFG)).kind == "model_not_found"


@clause("C-OPEN-13", source="edge-cases.md:124")
def test_C_OPEN_13_name_resolves_in_models_dir(modeld: Any) -> None:
    """An empty path resolves in the models dir (<models>/<name>/model.gguf for llama, <models>/<name>/ for
    openvino)."""
    ref = modeld.target.store_model()  # a model the daemon's store holds, by name only
    sid = modeld.conn.open_session(ref, CFG)
    modeld.conn.close_session(sid)


@clause("C-OPEN-14", source="real-daemon-observations.md (unsupported_model_type); wire.md §9.1")
def test_C_OPEN_14_unknown_type_is_unsupported(modeld: Any) -> None:
    """type "onnx" → unsupported_model_type before any backend is asked."""
    ref = {"model_name": "tiny", "type": "onnx"}
    assert raises_kind(lambda: modeld.conn.load_model(ref, CFG)).kind == "unsupported_model_type"


@clause("C-OPEN-15", source="edge-cases.md:89,91,92,93")
def test_C_OPEN_15_node_admin(modeld: Any) -> None:
    """list_models lists the model; disk_stats total is the daemon's (> 0); remove of an unknown name →
    model_not_found."""
    ref = modeld.target.store_model()  # a model the daemon's store holds (staged there if need be)
    listed = {m.get("name"): m.get("type") for m in modeld.conn.list_models()}
    assert listed.get(ref["model_name"]) == ref["type"], listed
    total = int(modeld.conn.disk_stats()["total_bytes"])
    assert total == int(Observer(modeld.target).disk_stats()["total_bytes"]) > 0, total
    assert raises_kind(lambda: modeld.conn.remove_model("no-such-model")).kind == "model_not_found"


@clause("C-OPEN-16", source="edge-cases.md:91")
def test_C_OPEN_16_remove_model_deletes_it(modeld: Any) -> None:
    """remove_model deletes the model directory; list_models no longer shows it (a model the clause put
    into the store itself: an external daemon's own models are never touched)."""
    ref = modeld.target.stage_model("contract-extra")
    extra = os.path.join(modeld.target.data_root, "models", ref["model_name"])
    assert ref["model_name"] in [m.get("name") for m in modeld.conn.list_models()]
    modeld.conn.remove_model(ref["model_name"])
    assert not os.path.exists(extra)
    assert ref["model_name"] not in [m.get("name") for m in modeld.conn.list_models()]


@clause("C-OPEN-17", source="edge-cases.md:114; real-daemon-observations.md (corrupt path)")
def test_C_OPEN_17_load_failure(modeld: Any, tmp_path: Any) -> None:
    """A corrupt model file → model_load_failed; Status then shows Failed with last_error."""
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x00garbage")
    ref = {"model_name": "bad", "type": "llama", "path": str(bad)}
    assert raises_kind(lambda: modeld.conn.open_session(ref, CFG)).kind == "model_load_failed"
    seen = Observer(modeld.target).status()
    assert seen.get("state") == "Failed" and seen.get("last_error"), seen
    st = modeld.conn.status()
    assert (st.get("state"), st.get("last_error")) == (seen["state"], seen["last_error"]), st


@clause("C-OPEN-18", source="edge-cases.md:87; wire.md §6 (sessions die with their connection)")
def test_C_OPEN_18_connection_end_frees_the_slot(modeld: Any) -> None:
    """Closing the connector ends its connection: the slot is free again (no model_busy)."""
    modeld.conn.open_session(modeld.model, CFG)
    modeld.conn.close()
    modeld.conn.configure(modeld.target.data_root)
    import time

    deadline = time.monotonic() + 2.0
    while True:
        try:
            sid = modeld.conn.open_session(modeld.model, CFG)
            break
        except Exception as exc:
            if getattr(exc, "kind", "") != "model_busy" or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    modeld.conn.close_session(sid)


@clause("C-OPEN-19", source="edge-cases.md:47")
def test_C_OPEN_19_close_is_idempotent_and_redials(modeld: Any) -> None:
    """Closing the connector twice is harmless and a later call dials again."""
    modeld.conn.status()
    modeld.conn.close()
    modeld.conn.close()
    modeld.conn.configure(modeld.target.data_root)
    assert modeld.conn.status().get("owner_instance_id") == modeld.target.instance_id


@clause("C-OPEN-20", source="session-semantics.md §3 (LoadModel expected_generation); edge-cases.md:84,113")
def test_C_OPEN_20_conditional_load(modeld: Any) -> None:
    """load_model with a stale expected generation → slot_generation_stale, the slot unchanged; with the
    current one (same identity) it returns that generation unchanged."""
    gen = int(modeld.conn.load_model(modeld.model, CFG)["generation"])
    err = raises_kind(lambda: modeld.conn.load_model(modeld.model, CFG, expected_generation=gen + 1))
    assert err.kind == "slot_generation_stale", err
    obs = Observer(modeld.target)
    assert int((obs.status().get("active") or {}).get("generation") or 0) == gen
    again = modeld.conn.load_model(modeld.model, CFG, expected_generation=gen)
    assert int(again["generation"]) == gen, again
