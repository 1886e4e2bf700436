"""The layers are contracts: import-linter checks them (setup.cfg, [importlinter]), a deliberately
broken import is caught, no module imports another's underscore-private name, and validating a
config loads neither the numba kernels, the timing model nor a dataset module."""

from __future__ import annotations

import ast
import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# relaxsim.devices, relaxsim.schedules, relaxsim.validation: links in relaxsim/ to these
MAPPED = ("devices", "schedules", "validation")
CONTRACTS = ("layers", "kernels", "devices", "timing", "cli", "acyclic")

pytest.importorskip("importlinter", reason="import-linter is a test extra")


def package_tree(dest: Path) -> Path:
    """A copy of the package (the linked directories copied in place) to break on purpose.
    Returns the directory to put on ``sys.path``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc", "*.toml", "*.md")
    shutil.copytree(ROOT / "relaxsim", dest / "relaxsim", ignore=ignore)
    return dest


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the project's contracts on the package found first in ``tree``."""
    exe = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(exe), str(ROOT / "setup.cfg"), "--no-cache"],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=300)


def test_the_linked_packages_are_the_top_level_directories():
    for name in MAPPED:
        link = ROOT / "relaxsim" / name
        assert link.is_symlink() and link.resolve() == (ROOT / name).resolve()


def test_the_configured_contracts_are_the_documented_ones():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    names = [s.split(":", 2)[2] for s in parser.sections()
             if s.startswith("importlinter:contract:")]
    assert names == list(CONTRACTS)


def test_every_layer_contract_holds():
    # as a developer runs it: `lint-imports` in the project's directory, on the package installed
    result = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


@pytest.mark.parametrize("module, line, contract", [
    # a kernel reading the config
    ("kernels/passes.py", "import relaxsim.config", "Kernels take arrays and numbers"),
    # a device record reaching into the training loop
    ("devices/records.py", "import relaxsim.training.loop", "Device records hold numbers"),
    # the timing model calling a kernel
    ("timing.py", "import relaxsim.kernels.rng", "The timing model is SimPy and numbers"),
    # library code reaching for the command line
    ("report/figures.py", "import relaxsim.cli.app", "Nothing imports the command line"),
    # a lower layer importing a higher one: a cycle
    ("config.py", "import relaxsim.runner", "No import cycles"),
])
def test_a_broken_import_breaks_its_contract(tmp_path, module, line, contract):
    tree = package_tree(tmp_path)
    path = tree / "relaxsim" / module
    path.write_text(path.read_text() + f"\n\ndef _broken():\n    {line}\n")
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout
    assert "Contracts: " in result.stdout and " broken." in result.stdout, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[1]  # each broken one's full name
    assert contract in broken, result.stdout


def python_files():
    for base in ("relaxsim", *MAPPED):  # rglob does not follow the links
        yield from sorted((ROOT / base).rglob("*.py"))


def test_no_module_imports_a_private_name_of_another():
    found = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("relaxsim"):
                found += [f"{path.relative_to(ROOT)}: from {node.module} import {a.name}"
                          for a in node.names if a.name.startswith("_")
                          and not a.name.startswith("__")]
    assert found == []


def test_validating_a_config_loads_no_kernels_timing_or_dataset():
    code = (
        "import sys, relaxsim.config as c\n"
        "c.load_config(overrides={'hardware.clock': '40 ps', 'training.optimizer': 'sgd'})\n"
        "heavy = ('numba', 'simpy', 'sklearn', 'dask', 'matplotlib', 'relaxsim.kernels',\n"
        "         'relaxsim.timing', 'relaxsim.training', 'relaxsim.model',\n"
        "         'relaxsim.data.svhn', 'relaxsim.data.text', 'relaxsim.data.images',\n"
        "         'relaxsim.data.download')\n"
        "print(sorted({m for m in sys.modules if m.startswith(heavy)}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.strip() == "[]"


def test_a_bad_optimizer_name_is_refused_without_importing_training():
    code = (
        "import sys, relaxsim.config as c\n"
        "try:\n"
        "    c.load_config(overrides={'training.optimizer': 'adma'})\n"
        "except Exception as exc:\n"
        "    print(exc)\n"
        "print('relaxsim.training.optim' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout.splitlines()
    assert out == ["training.optimizer: unknown optimizer 'adma'; known: adam, sgd; "
                   "did you mean 'adam'?", "False"]


def test_the_config_offers_the_pipelining_modes_the_timing_model_has():
    from relaxsim import config, timing

    assert config.PIPELINING == timing.PIPELINING
