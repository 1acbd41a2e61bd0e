"""The recorder against the real daemon: the corpus comes back unchanged, twice, and so do the lifecycle
facts.

The corpus is the daemon's own answers: any difference here is a bug in the recorder's request filling or
normalisation (``contract_tests/corpus.py`` or ``contract_tests/real/record.py``), or a changed daemon.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from modeld_contract.corpus import MODELD_CORPUS, load_cases
from modeld_contract.real.build import BuildResult
from modeld_contract.real.diff import diff_files
from modeld_contract.real.record import LIFECYCLE_CASES, MACHINE_VALUES, mask_machine_values, record_lifecycle

RecordTwice = Callable[[str, Path], tuple[Path, Path]]


def _assert_same(old: Path, new: Path) -> None:
    report, differs = diff_files(old, new)
    assert not differs, report
    assert old.read_bytes() == new.read_bytes(), "same cases and values, but not the same bytes"


# -- without the daemon ------------------------------------------------------------------------------------


def _machine_paths(value: Any, path: str = "") -> set[str]:
    if value == "<machine>":
        return {path}
    if isinstance(value, dict):
        return set().union(*(_machine_paths(v, f"{path}.{k}") for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(_machine_paths(v, f"{path}[]") for v in value))
    return set()


@pytest.mark.parametrize("backend", ["none", "llama"])
def test_machine_values_are_exactly_what_the_corpus_masks(backend: str) -> None:
    """Masking the corpus's own replies changes nothing, and masks every `<machine>` it has."""
    seen = 0
    for case in load_cases(MODELD_CORPUS / f"real-{backend}.jsonl"):
        msgs = case.reply.get("messages")
        if case.method not in MACHINE_VALUES or not msgs:
            assert "<machine>" not in json.dumps(case.raw), case.name
            continue
        assert mask_machine_values(case.method, msgs) == msgs, case.name
        for path in _machine_paths(msgs):
            assert path.split(".")[1].removesuffix("[]") in MACHINE_VALUES[case.method], (case.name, path)
            seen += 1
    assert seen >= 3


def test_mask_keeps_key_order_and_masks_device_lists() -> None:
    got = mask_machine_values(
        "Describe",
        [
            {
                "model_max_context": 256,
                "free_bytes": 5,
                "devices": [{"index": 0, "name": "CPU"}],
                "weights_bytes": 9,
            }
        ],
    )
    assert json.dumps(got) == json.dumps(
        [
            {
                "model_max_context": 256,
                "free_bytes": "<machine>",
                "devices": [{"index": "<machine>", "name": "<machine>"}],
                "weights_bytes": 9,
            }
        ]
    )
    assert mask_machine_values("Status", [{"free_bytes": 1}]) == [{"free_bytes": 1}]


def test_lifecycle_cases_are_the_corpus_facts() -> None:
    names = [json.loads(t)["case"] for t in (MODELD_CORPUS / "lifecycle-none.jsonl").read_text().splitlines()]
    assert list(LIFECYCLE_CASES) == names and len(names) == 17


def test_record_help_documents_the_options() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "modeld_contract.real", "record", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for opt in ("--backend", "--out", "--modeld-bin", "--model", "{none,llama}", "<machine>", "SIGTERM"):
        assert opt in out, opt


# -- backend none ------------------------------------------------------------------------------------------


@pytest.mark.real_daemon("none")
def test_recording_none_matches_the_corpus(modeld_none: BuildResult, record_twice: RecordTwice) -> None:
    first, _ = record_twice("none", modeld_none.binary)
    _assert_same(MODELD_CORPUS / "real-none.jsonl", first)


@pytest.mark.real_daemon("none")
def test_recording_none_is_deterministic(modeld_none: BuildResult, record_twice: RecordTwice) -> None:
    first, second = record_twice("none", modeld_none.binary)
    _assert_same(first, second)


@pytest.mark.real_daemon("none")
def test_record_lifecycle_matches_the_corpus(modeld_none: BuildResult, tmp_path: Path) -> None:
    out = record_lifecycle(tmp_path / "lifecycle-none.jsonl", modeld_bin=modeld_none.binary)
    _assert_same(MODELD_CORPUS / "lifecycle-none.jsonl", out)


@pytest.mark.real_daemon("none")
def test_cli_record_and_diff(modeld_none: BuildResult, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "modeld_contract.real"]
    subprocess.run(
        [
            *cmd,
            "record",
            "--backend",
            "none",
            "--out",
            str(tmp_path),
            "--modeld-bin",
            str(modeld_none.binary),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    diff = subprocess.run(
        [*cmd, "diff", str(MODELD_CORPUS / "real-none.jsonl"), str(tmp_path / "real-none.jsonl")],
        timeout=60,
        capture_output=True,
        text=True,
    )
    assert diff.returncode == 0, diff.stdout
    assert "103 cases compared, 0 differ: identical" in diff.stdout


# -- backend llama -----------------------------------------------------------------------------------------


@pytest.mark.real_daemon("llama")
def test_recording_llama_matches_the_corpus(modeld_llama: BuildResult, record_twice: RecordTwice) -> None:
    first, _ = record_twice("llama", modeld_llama.binary)
    _assert_same(MODELD_CORPUS / "real-llama.jsonl", first)


@pytest.mark.real_daemon("llama")
def test_recording_llama_is_deterministic(modeld_llama: BuildResult, record_twice: RecordTwice) -> None:
    first, second = record_twice("llama", modeld_llama.binary)
    _assert_same(first, second)
