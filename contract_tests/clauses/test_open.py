"""C-OPEN: lease-resolved calls against a live owner — status, the slot, describe, embed, node admin.

Sources: edge-cases.md §C, §E, §F (slot), session-semantics.md §2, §3, §7,
real-daemon-observations.md (slot, store)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from modeld_contract.clauses._util import empty_slot, raises_kind

clause = pytest.mark.clause
CFG = {"NumCtx": 128}


@clause("C-OPEN-01", source="edge-cases.md:43")
def test_C_OPEN_01_status_reaches_the_lease_owner(modeld: Any) -> None:
    """status() reaches the owner the lease names (owner instance and backend)."""
    st = modeld.conn.status()
    assert st.get("owner_instance_id") == modeld.target.instance_id
    assert st.get("backend") == modeld.conn.backend()
    assert modeld.conn.status().get("owner_instance_id") == modeld.target.instance_id


@clause("C-OPEN-02", source="edge-cases.md:84,109")
def test_C_OPEN_02_open_session_activates_the_model(modeld: Any) -> None:
    """open_session on an empty slot loads the model: Status Ready/Busy with a generation > 0."""
    sid = modeld.conn.open_session(modeld.model, CFG)
    st = modeld.conn.status()
    assert st.get("state") in ("Ready", "Busy")
    assert int(st["active"]["generation"]) > 0
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
    rep = modeld.conn.explain_context(sid2)
    assert rep["NumCtx"] == 64
    modeld.conn.close_session(sid2)


@clause("C-OPEN-05", source="edge-cases.md:84")
def test_C_OPEN_05_load_model_generation(modeld: Any) -> None:
    """load_model → generation > 0; Status Ready with the same generation; a session opens on it."""
    am = modeld.conn.load_model(modeld.model, CFG)
    gen = int(am["generation"])
    assert gen > 0
    st = modeld.conn.status()
    assert st["state"] == "Ready" and int(st["active"]["generation"]) == gen
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
    assert modeld.conn.status().get("state", "Empty") in ("", "Empty")


@clause("C-OPEN-08", source="edge-cases.md:113")
def test_C_OPEN_08_unload_with_wrong_generation_is_stale(modeld: Any) -> None:
    """unload_model(generation + 1) → slot_generation_stale."""
    gen = int(modeld.conn.load_model(modeld.model, CFG)["generation"])
    assert raises_kind(lambda: modeld.conn.unload_model(gen + 1)).kind == "slot_generation_stale"


@clause("C-OPEN-09", source="edge-cases.md:122; session-semantics.md §4.7")
def test_C_OPEN_09_reopen_after_close(modeld: Any) -> None:
    """After close_session, the same identity opens again (the resident model is reused)."""
    sid = modeld.conn.open_session(modeld.model, CFG)
    gen = int(modeld.conn.status()["active"]["generation"])
    modeld.conn.close_session(sid)
    sid2 = modeld.conn.open_session(modeld.model, CFG)
    assert int(modeld.conn.status()["active"]["generation"]) == gen
    modeld.conn.close_session(sid2)


@clause("C-OPEN-10", source="edge-cases.md:62; session-semantics.md §3.7")
def test_C_OPEN_10_describe_reports_context_budget(modeld: Any) -> None:
    """describe with NumCtx 128 → effective_context 128 and a model_max_context."""
    info = modeld.conn.describe(modeld.model, CFG)
    assert int(info["effective_context"]) == 128
    assert int(info["model_max_context"]) >= 128


@clause("C-OPEN-11", source="edge-cases.md:83,123")
def test_C_OPEN_11_embed_returns_a_vector(modeld: Any) -> None:
    """embed returns a non-empty float vector (on a slot with no explicit model); while a handle is held
    it is model_busy."""
    empty_slot(modeld.conn)  # an explicitly loaded model (a shared daemon's earlier clause) → model_busy
    vec = modeld.conn.embed(modeld.model, CFG, "hello")
    assert len(vec) > 0 and all(isinstance(x, float) for x in vec)
    sid = modeld.conn.open_session(modeld.model, CFG)
    assert raises_kind(lambda: modeld.conn.embed(modeld.model, CFG, "x")).kind == "model_busy"
    modeld.conn.close_session(sid)


@clause("C-OPEN-12", source="edge-cases.md:124; session-semantics.md §3.1")
def test_C_OPEN_12_unknown_model_is_not_found(modeld: Any) -> None:
    """A name the models dir does not hold (no path) → model_not_found, for open and describe."""
    ref = {"model_name": "no-such-model", "type": "llama"}
    assert raises_kind(lambda: modeld.conn.open_session(ref, CFG)).kind == "model_not_found"
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
    """list_models lists the model; disk_stats total > 0; remove of an unknown name → model_not_found."""
    ref = modeld.target.store_model()  # a model the daemon's store holds (staged there if need be)
    listed = {m.get("name"): m.get("type") for m in modeld.conn.list_models()}
    assert listed.get(ref["model_name"]) == ref["type"], listed
    assert int(modeld.conn.disk_stats()["total_bytes"]) > 0
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
    st = modeld.conn.status()
    assert st.get("state") == "Failed" and st.get("last_error")


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
