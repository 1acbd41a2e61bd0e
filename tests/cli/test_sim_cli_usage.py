"""`modeld-sim` as a new user meets it: usage without a command, `serve --help`, engines whose extra is
missing, `make-model`, packaged scenarios, and one clear line (never a traceback) for bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modeld_sim import cli
from modeld_sim.gguf import read_gguf
from modeldconn import lease as liblease


def _sim(*args: str, home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=str(home))
    env.pop("CONTENOX_DATA_ROOT", None)
    return subprocess.run(
        [sys.executable, "-m", "modeld_sim.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("argv", [[], ["--data-root", "/tmp/x"], ["--ttl", "1s"]])
def test_no_command_prints_usage_and_takes_no_lease(tmp_path: Path, argv: list[str]) -> None:
    r = _sim(*argv, home=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("usage: modeld-sim")
    assert "a command is required (serve, make-model, cluster, scenario, ctl, lease)" in r.stderr
    assert f"modeld-sim serve {' '.join(argv) or '--data-root DIR'}" in r.stderr
    assert r.stdout == "" and not (tmp_path / ".contenox").exists()


def test_top_level_help_lists_the_commands(tmp_path: Path) -> None:
    r = _sim("--help", home=tmp_path)
    assert r.returncode == 0
    for command in ("serve", "make-model", "cluster", "scenario", "ctl", "lease"):
        assert re.search(rf"^\s+{command}\b", r.stdout, re.M), command


def test_serve_help_gives_every_option_a_help_text_and_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = cli._parser()
    serve = parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    shown = [a for a in serve._actions if a.help != "==SUPPRESS==" and a.dest != "help"]
    assert len(shown) >= 16
    for action in shown:
        assert action.help and "(default: " in action.help, action.option_strings
    assert cli.main(["serve", "--help"]) == 0
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, even inside words
    for action in shown:
        assert action.option_strings[0] in text
        assert "".join(str(action.help).split()) in text


@pytest.mark.parametrize(("engine", "module"), [("llama", "llama_cpp"), ("openvino", "openvino")])
def test_real_engine_without_its_extra_fails_before_the_lease(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    engine: str,
    module: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed, whatever this machine has
    if engine == "llama":
        from modeld_sim.engines import llama

        monkeypatch.setattr(llama, "_native", None)
        monkeypatch.setattr(llama, "_native_err", None)
    root = tmp_path / "D"
    argv = ["serve", "--data-root", str(root), "--engine", engine, "--backend", engine]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"modeld: engine '{engine}' needs ")
    assert f"pip install 'modeld-contract[{engine}]'" in err
    assert "modeld listener ready" not in err and not root.exists()  # no listener, no data root, no lease


def test_real_llama_missing_here_through_the_real_command(tmp_path: Path) -> None:
    """The reported case, end to end: llama-cpp-python is not installed in this environment."""
    from modeld_sim.engines.llama import llama_available

    if llama_available():  # this machine has the extra: the in-process test above covers the refusal
        assert _sim("serve", "--help", home=tmp_path).returncode == 0
        return
    r = _sim("serve", "--data-root", str(tmp_path / "D"), "--engine", "llama", home=tmp_path)
    assert r.returncode == 1
    assert "pip install 'modeld-contract[llama]'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "D").exists()


def test_make_model_defaults_to_a_model_the_fake_engine_serves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m" / "tiny.gguf"
    assert cli.main(["make-model", "--out", str(out), "--context-length", "512"]) == 0
    assert f"wrote fake model {out}" in capsys.readouterr().out
    g = read_gguf(out)
    assert g.context_length == 512 and g.architecture == "llama" and g.has_tokenizer
    assert cli.main(["make-model", "--out", str(out), "--embedding-length", "10", "--heads", "4"]) == 2
    assert cli.main(["make-model", "--type", "nope", "--out", str(out)]) == 2


def test_scenario_run_by_packaged_name(tmp_path: Path) -> None:
    root = tmp_path / "D"
    started = time.monotonic()
    r = _sim("scenario", "run", "leader-crash", "--data-root", str(root), home=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "modeld-sim scenario: leader crash data_root=" in r.stdout
    assert "step[1] node.kill (at 1s)" in r.stderr and "modeld-sim scenario: done after" in r.stdout
    assert time.monotonic() - started >= 3.0  # the packaged file's duration was played
    with pytest.raises(liblease.LeaseNotFound):  # the cluster stopped and released
        liblease.inspect(liblease.lease_path(root))
    bad = _sim("scenario", "run", "leader-krash", home=tmp_path)
    assert bad.returncode == 2 and "nor a packaged scenario" in bad.stderr and "leader-crash" in bad.stderr


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["serve", "--scenario", "nope"], 2, "nope: no such file, nor a packaged scenario"),
        (["cluster", "--scenario", "nope"], 2, "nope: no such file, nor a packaged scenario"),
        (["lease", "pause"], 1, "needs a running simulator with a control plane"),
        (["lease", "melt"], 2, "unknown lease operation 'melt'"),
        (["lease", "stale", "by"], 2, "want key=value"),
        (["ctl", "status"], 1, "no control plane at"),
        (["ctl"], 2, "usage: modeld-sim ctl"),
        (["scenario"], 2, "usage: modeld-sim scenario"),
        (["serve", "--idle-ttl", "soon"], 1, 'parse --idle-ttl "soon"'),
        (["serve", "--listen", "nohost"], 1, "missing port in address"),
    ],
)
def test_bad_input_is_one_clear_message(tmp_path: Path, argv: list[str], code: int, says: str) -> None:
    root = ["--data-root", str(tmp_path / "D")] if argv[0] in ("serve", "cluster", "lease", "ctl") else []
    r = _sim(argv[0], *root, *argv[1:], home=tmp_path)
    assert r.returncode == code, r.stderr
    assert says in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "D" / "modeld.lease").exists()


def test_ctl_with_a_control_file_left_behind_says_the_simulator_is_gone(tmp_path: Path) -> None:
    from modeld_sim.control import CONTROL_FILE_NAME
    from modeld_sim.leasescript import closed_port

    root = tmp_path / "D"
    root.mkdir()
    doc = {"endpoint": f"127.0.0.1:{closed_port()}", "token": "t" * 43, "pid": 1}
    (root / CONTROL_FILE_NAME).write_text(json.dumps(doc))
    r = _sim("ctl", "--data-root", str(root), "status", home=tmp_path)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "does not answer; is the simulator still running?" in r.stderr and doc["endpoint"] in r.stderr
