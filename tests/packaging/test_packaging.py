"""The distribution ships every package of the repository, the suite under its import name."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _declared() -> tuple[set[str], dict[str, str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    st = data["tool"]["setuptools"]
    return set(st["packages"]), dict(st.get("package-dir", {}))


def test_every_package_directory_is_declared() -> None:
    declared, dirs = _declared()
    folder_to_name = {folder: name for name, folder in dirs.items()}
    found = set()
    for top in ("modeldconn", "modeld_sim", "contract_tests"):
        for init in (ROOT / top).rglob("__init__.py"):
            parts = list(init.parent.relative_to(ROOT).parts)
            parts[0] = folder_to_name.get(parts[0], parts[0])
            found.add(".".join(parts))
    assert found == declared


def test_suite_is_imported_under_a_name_no_provider_repository_has() -> None:
    _, dirs = _declared()
    assert dirs == {"modeld_contract": "contract_tests"}
    import modeld_contract

    assert Path(modeld_contract.__file__).resolve().parent == ROOT / "contract_tests"
