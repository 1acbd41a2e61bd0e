"""The suite's options: each command-line option has an ini twin, and every mistake in them is told
once, up front, as a ``pytest.UsageError`` saying what is wrong and how to fix it.

Validation here is syntactic and cheap (no imports of the connector, no builds): it runs in
``pytest_configure`` whenever the suite is in use. Whether a connector module can be imported or a
driver executable exists is checked once at collection (:func:`check_connector`).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from modeld_contract.profiles import PROFILES

__all__ = [
    "DEFAULT_CONNECTOR",
    "DEFAULT_TARGET",
    "MODEL_TYPES",
    "ModeldOptions",
    "add_options",
    "check_connector",
    "explicitly_set",
    "resolve",
]

DEFAULT_CONNECTOR = "modeldconn"
DEFAULT_TARGET = "sim"
MODEL_TYPES = ("llama", "openvino")
SIM_TARGETS = ("sim", "sim-subprocess")
REAL_TARGETS = ("real:none", "real:llama")

# (option, ini name, help); the ini twin has the same meaning and the command line wins
_OPTIONS: tuple[tuple[str, str, str], ...] = (
    (
        "--modeld-connector",
        "modeld_connector",
        "connector under test: a Python module or module:factory (default modeldconn), "
        "'exec:COMMAND' for a driver executable (docs/driver-protocol.md), or 'go' for the real Go "
        "connector (built on demand)",
    ),
    (
        "--modeld-target",
        "modeld_target",
        "target: sim (default, the in-process simulator), sim-subprocess (modeld-sim serve), "
        "lease:DATA_ROOT (a daemon found through its lease), real:none | real:llama (the real "
        "modeld v0.36.0, built if needed, a fresh daemon per clause)",
    ),
    (
        "--modeld-model",
        "modeld_model",
        "TYPE:PATH (TYPE llama or openvino) of the model an external target serves, or 'none' to run "
        "lease:DATA_ROOT without one on purpose (the clauses that need a model then skip)",
    ),
    ("--modeld-report", "modeld_report", "write the conformance report to PATH.md, PATH.json or PATH.html"),
    (
        "--modeld-hypothesis-profile",
        "modeld_hypothesis_profile",
        "the clauses' Hypothesis profile: dev (60 examples), ci (200, derandomised), deep (5000); "
        "default ci under CI, else dev. Applies to the suite's clauses only",
    ),
    (
        "--modeld-min-ran",
        "modeld_min_ran",
        "fail the run when fewer than N clauses ran (passed or failed): a CI guard against a target "
        "that silently skipped whole families",
    ),
)


@dataclass(frozen=True)
class ModeldOptions:
    connector: str
    target: str
    model: str | None
    report: str | None
    profile: str
    strict: bool = False
    min_ran: int = 0

    @property
    def subprocess_connector(self) -> bool:
        return self.connector.startswith("exec:") or self.connector == "go"

    @property
    def target_kind(self) -> str:
        return "external" if self.target.startswith("lease:") else self.target

    @property
    def scriptable(self) -> bool:
        return self.target == "sim"

    @property
    def fake_engine(self) -> bool:
        """The target serves the simulator's fake engine (one token per UTF-8 byte): the in-process or
        subprocess simulator on its own tiny model, no ``--modeld-model``."""
        return self.target in SIM_TARGETS and not self.model

    @property
    def fake_engine_skip_reason(self) -> str:
        why = f"target is {self.target}" + (f" with --modeld-model {self.model}" if self.model else "")
        return f"needs the simulator's fake engine (one token per UTF-8 byte, docs/fake-engine.md); {why}"

    @property
    def model_spec(self) -> str | None:
        """The model option as the targets take it: ``None`` for none given or ``none`` on purpose."""
        return None if self.model in (None, "none") else self.model

    def command_line(self) -> list[str]:
        """The options that reproduce this run (for the report's reproduce commands)."""
        out = [f"--modeld-connector={self.connector}", f"--modeld-target={self.target}"]
        if self.model:
            out.append(f"--modeld-model={self.model}")
        out.append(f"--modeld-hypothesis-profile={self.profile}")
        return out


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("modeld", "modeld contract suite")
    for opt, ini, text in _OPTIONS:
        group.addoption(opt, default=None, help=f"{text} (ini: {ini})")
        parser.addini(ini, f"{text} (the command line's {opt} wins)", default=None)
    group.addoption(
        "--modeld-strict",
        action="store_true",
        default=None,
        help="a target or connector that cannot be built or started fails the run instead of skipping "
        "(on by default under CI=true or MODELD_STRICT=1; ini: modeld_strict)",
    )
    parser.addini("modeld_strict", "like --modeld-strict", type="bool", default=None)


def _raw(config: pytest.Config, opt: str, ini: str) -> Any:
    value = config.getoption(opt, None)
    if value is None:
        value = config.getini(ini)
    if value in ("", []):
        return None
    return value


def explicitly_set(config: pytest.Config) -> bool:
    """Any suite option on the command line or in the ini file."""
    if any(_raw(config, opt, ini) is not None for opt, ini, _ in _OPTIONS):
        return True
    return bool(config.getoption("--modeld-strict", None)) or config.getini("modeld_strict") is not None


def _check_target(target: str) -> None:
    if target in SIM_TARGETS or target in REAL_TARGETS:
        return
    if target.startswith("lease:"):
        root = target[len("lease:") :]
        if not root:
            raise pytest.UsageError(
                "--modeld-target=lease: needs the daemon's data root: --modeld-target=lease:DATA_ROOT"
            )
        if not os.path.isdir(os.path.expanduser(root)):
            raise pytest.UsageError(
                f"--modeld-target={target}: {root!r} is not a directory; give the data root the daemon "
                "was started with (the directory holding its lease)"
            )
        return
    choices = ", ".join([*SIM_TARGETS, "lease:DATA_ROOT", *REAL_TARGETS])
    raise pytest.UsageError(f"unknown --modeld-target {target!r}: choose one of {choices}")


def _check_model(model: str | None, target: str) -> None:
    if model is None:
        if target.startswith("lease:"):
            raise pytest.UsageError(
                f"--modeld-target={target} needs the model the daemon serves: --modeld-model TYPE:PATH "
                f"(TYPE one of {', '.join(MODEL_TYPES)}), or --modeld-model none to run only the clauses "
                "that need no model"
            )
        return
    if model == "none":
        return
    typ, sep, path = model.partition(":")
    if not sep or typ not in MODEL_TYPES or not path:
        raise pytest.UsageError(
            f"--modeld-model {model!r}: expected TYPE:PATH with TYPE one of {', '.join(MODEL_TYPES)} "
            f"(for example --modeld-model llama:{model if not sep else path or 'model.gguf'})"
        )
    if not os.path.exists(os.path.expanduser(path)):
        raise pytest.UsageError(f"--modeld-model {model!r}: {path!r} does not exist")


def _check_connector_syntax(spec: str) -> None:
    if spec.startswith("exec:") and not spec[len("exec:") :].strip():
        raise pytest.UsageError("--modeld-connector=exec: needs a command: exec:COMMAND [ARGS…]")
    if not spec.strip():
        raise pytest.UsageError(
            "--modeld-connector is empty: give a module, module:factory, exec:COMMAND or go"
        )


def resolve(config: pytest.Config, *, default_profile: str) -> ModeldOptions:
    """The options of this run, validated (``pytest.UsageError`` on the first mistake)."""
    from modeld_contract.strict import is_strict

    connector = str(_raw(config, "--modeld-connector", "modeld_connector") or DEFAULT_CONNECTOR)
    target = str(_raw(config, "--modeld-target", "modeld_target") or DEFAULT_TARGET)
    model_raw = _raw(config, "--modeld-model", "modeld_model")
    model = None if model_raw is None else str(model_raw)
    report_raw = _raw(config, "--modeld-report", "modeld_report")
    report = None if report_raw is None else str(report_raw)
    profile = str(_raw(config, "--modeld-hypothesis-profile", "modeld_hypothesis_profile") or default_profile)
    min_raw = _raw(config, "--modeld-min-ran", "modeld_min_ran")

    _check_connector_syntax(connector)
    _check_target(target)
    _check_model(model, target)
    if profile not in PROFILES:
        raise pytest.UsageError(
            f"unknown --modeld-hypothesis-profile {profile!r}: choose one of {', '.join(PROFILES)}"
        )
    if report is not None and not report.endswith((".md", ".json", ".html")):
        raise pytest.UsageError(f"--modeld-report {report!r}: the file name must end in .md, .json or .html")
    try:
        min_ran = 0 if min_raw is None else int(str(min_raw))
    except ValueError:
        raise pytest.UsageError(f"--modeld-min-ran {min_raw!r}: expected a whole number of clauses") from None
    if min_ran < 0:
        raise pytest.UsageError(f"--modeld-min-ran {min_ran}: expected a number >= 0")
    return ModeldOptions(
        connector=connector,
        target=target,
        model=model,
        report=report,
        profile=profile,
        strict=is_strict(config),
        min_ran=min_ran,
    )


def check_connector(spec: str) -> None:
    """A Python connector module that cannot be found, or a driver command that does not exist, is a
    usage error (checked once, before any clause runs). ``go`` is built later: its failure is a skip,
    or a failure under strict mode."""
    if spec == "go":
        return
    if spec.startswith("exec:"):
        try:
            argv = shlex.split(spec[len("exec:") :])
        except ValueError as exc:
            raise pytest.UsageError(f"--modeld-connector={spec}: cannot split the command: {exc}") from None
        exe = argv[0]
        found = shutil.which(exe) if os.sep not in exe else (exe if os.access(exe, os.X_OK) else None)
        if found is None:
            why = "not found on PATH" if os.sep not in exe else "does not exist or is not executable"
            raise pytest.UsageError(
                f"--modeld-connector={spec}: the driver {exe!r} {why} (cwd {os.getcwd()}); "
                "give a path to an executable that speaks docs/driver-protocol.md"
            )
        return
    module, _, attr = spec.partition(":")
    top = module.split(".")[0]
    try:
        found_spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found_spec = None
    if found_spec is None:
        cwd_on_path = any(os.path.abspath(p or ".") == os.getcwd() for p in sys.path)
        local = Path(top + ".py").exists() or Path(top).is_dir()
        hint = (
            "it is in the current directory, which plain `pytest` does not put on sys.path: run "
            "`python -m pytest`, or set PYTHONPATH=."
            if local and not cwd_on_path
            else "install it, or put its directory on PYTHONPATH"
        )
        raise pytest.UsageError(f"--modeld-connector={spec}: cannot import module {module!r}; {hint}")
    try:
        obj: Any = importlib.import_module(module)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
    except AttributeError as exc:
        raise pytest.UsageError(f"--modeld-connector={spec}: {module!r} has no {attr!r} ({exc})") from None
    except Exception as exc:
        raise pytest.UsageError(
            f"--modeld-connector={spec}: importing {module!r} failed: {type(exc).__name__}: {exc}"
        ) from None
