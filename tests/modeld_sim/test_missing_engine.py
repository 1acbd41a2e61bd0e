"""A real engine whose optional library is absent is refused when the simulator starts, from
Python as from the command line, before it takes the lease."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from modeld_sim.engines import llama as llama_engine
from modeld_sim.simulator import Simulator, SimulatorError


@pytest.fixture
def no_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import llama_cpp` raise ImportError, installed or not
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    monkeypatch.setattr(llama_engine, "_native", None)
    monkeypatch.setattr(llama_engine, "_native_err", None)


async def test_the_in_process_simulator_refuses_a_llama_engine_without_its_extra(
    tmp_path: Path, no_llama_cpp: None
) -> None:
    root = tmp_path / "data"
    sim = Simulator(str(root), backend="llama", engine="llama")
    with pytest.raises(SimulatorError, match=r"pip install 'modeld-contract\[llama\]'"):
        await sim.start()
    assert not os.path.exists(root / "modeld.lease")
