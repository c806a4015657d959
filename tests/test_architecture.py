"""The layout rules of ARCHITECTURE.md, checked."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIMES = {"simpy", "asyncio"}  # nowhere under novacron/, not even the command line
FORBIDDEN_IN_PROTOCOL_CODE = RUNTIMES | {"time", "random"}
# novacron/ modules allowed to touch the OS clock or global randomness:
# the command line and process start-up are not protocol code.
EXEMPT = {"cli", "config"}


def all_modules():
    return sorted((ROOT / "novacron").rglob("*.py"))


def protocol_modules():
    for path in all_modules():
        rel = path.relative_to(ROOT / "novacron")
        if rel.parts[0] not in EXEMPT:
            yield path


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", list(protocol_modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_protocol_code_imports_neither_simpy_nor_asyncio_nor_global_time_or_random(path):
    bad = imported_roots(path) & FORBIDDEN_IN_PROTOCOL_CODE
    # `random` may be imported only for the type of rt.random (random.Random).
    if bad == {"random"} and "random.Random" in path.read_text() and "random.random(" not in path.read_text():
        bad = set()
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}; protocol code must use the runtime"


@pytest.mark.parametrize("path", all_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_under_novacron_imports_a_runtime(path):
    assert not imported_roots(path) & RUNTIMES, f"{path.relative_to(ROOT)} imports simpy or asyncio"


def test_importing_protocol_packages_loads_no_runtime():
    code = (
        "import sys, novacron.runtime, novacron.monitoring, novacron.config, novacron.data;"
        "print(sorted(m for m in ('simpy', 'asyncio') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    found = set()
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]))
    assert found - listed == set(), "add these packages to [tool.setuptools] packages"
    assert listed - found == set(), "these listed packages have no folder"


def test_sim_and_backends_install_only_under_novacron(tmp_path):
    code = (
        "import importlib.util as u, novacron.sim, novacron.backends;"
        "print(u.find_spec('sim'), u.find_spec('backends'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "None None"
