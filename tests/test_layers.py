"""The package's layers: nn -> tasks -> data -> runtime -> research -> cli. A lower layer never
imports a higher one, by an absolute import (``import lstmkit.data``, ``from lstmkit import data``)
or a relative one (``from ..data import x``, ``from .. import data``).

* ``lstmkit.nn`` (its fast path ``lstmkit.nn.fastpath`` included): the recurrent cores, plain
  PyTorch;
* ``lstmkit.tasks``, ``lstmkit.data``: the Lightning modules and the datamodules;
* ``lstmkit.runtime``: the run infrastructure the commands share (config checks, run folders,
  checkpoints, callbacks);
* ``lstmkit.research``: research tools on trained tasks, built on some of the run infrastructure;
* ``lstmkit.cli``: the commands, which may import everything and which nothing imports.

Beside them, the top level holds only leaf helpers that every layer may use.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "lstmkit"
# Helpers with no lstmkit imports of their own, which every layer may use.
HELPERS = (
    "lstmkit._validation",
    "lstmkit._errors",
    "lstmkit._logging",
    "lstmkit._backend_names",
    "lstmkit._lstm_args",
    "lstmkit.forecast_metrics",
)
# What each layer may import from lstmkit: itself, the layers below it, the helpers.
ALLOWED = {
    "nn": ("lstmkit.nn", *HELPERS),
    "tasks": ("lstmkit.tasks", "lstmkit.nn", *HELPERS),
    "data": ("lstmkit.data", "lstmkit.nn", *HELPERS),
    "runtime": ("lstmkit.runtime", "lstmkit.data", "lstmkit.tasks", "lstmkit.nn", *HELPERS),
    "research": (
        "lstmkit.research",
        "lstmkit.runtime",
        "lstmkit.tasks",
        "lstmkit.data",
        "lstmkit.nn",
        *HELPERS,
    ),
    "cli": ("lstmkit",),
}


def module_name(path: Path) -> str:
    """``src/lstmkit/tasks/base.py`` -> ``lstmkit.tasks.base`` (a package's ``__init__``: the package)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[str]:
    """Every module ``path`` imports, relative imports resolved to absolute names; ``from a import
    b`` gives both ``a`` and ``a.b`` (``b`` may be a submodule)."""
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names if alias.name != "*"]
    return names


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(layer: str) -> list[str]:
    found = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for name in imports(path):
            higher = name.startswith("lstmkit.") and not _within(name, ALLOWED[layer])
            if higher:
                found.append(f"{path.relative_to(PACKAGE)} imports {name}")
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_lower_layers_never_import_higher_ones(layer):
    offending = violations(layer)
    assert not offending, "\n".join(offending)


def test_nn_does_not_need_lightning():
    """The cores are plain PyTorch: research code can use them without Lightning."""
    offending = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / "nn").rglob("*.py"))
        for name in imports(path)
        if name.split(".")[0] in ("lightning", "torchmetrics", "hydra", "omegaconf")
    ]
    assert not offending, "\n".join(offending)


def test_relative_imports_are_resolved(tmp_path, monkeypatch):
    """The check sees through relative imports: each of these, in ``lstmkit/nn`` (its fast-path
    sub-package included) or ``lstmkit/runtime``, is caught."""
    fake = tmp_path / "lstmkit"
    (fake / "nn" / "fastpath").mkdir(parents=True)
    (fake / "runtime").mkdir()
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    sources = {
        "nn/a.py": "from ..tasks import SequenceTask\n",
        "nn/b.py": "from .. import data\n",
        "nn/fastpath/c.py": "from ...cli.train import main\n",
        "nn/fastpath/e.py": "from ...runtime import runs\n",
        "nn/__init__.py": "from ..research.gates import x\n",
        "nn/d.py": "from lstmkit.cli import evaluate\n",
        "nn/ok.py": "from .cell import lstm_step\nfrom . import settings\nfrom .. import _validation\n",
        "nn/fastpath/ok.py": "from ..cell import LAYER_NORM_EPS\nfrom . import fused\n",
        "runtime/f.py": "from ..cli import train\n",
        "runtime/g.py": "from ..research.gates import x\n",
        "runtime/ok.py": "from ..tasks import SequenceTask\nfrom .config_checks import check\n",
    }
    for rel, text in sources.items():
        (fake / rel).write_text(text)
    found = "\n".join(violations("nn") + violations("runtime"))
    for rel, higher in [
        ("nn/a.py", "lstmkit.tasks"),
        ("nn/b.py", "lstmkit.data"),
        ("nn/fastpath/c.py", "lstmkit.cli.train"),
        ("nn/fastpath/e.py", "lstmkit.runtime"),
        ("nn/__init__.py", "lstmkit.research.gates"),
        ("nn/d.py", "lstmkit.cli.evaluate"),
        ("runtime/f.py", "lstmkit.cli.train"),
        ("runtime/g.py", "lstmkit.research.gates"),
    ]:
        assert f"{rel} imports {higher}" in found, found
    for ok in ("nn/ok.py", "nn/fastpath/ok.py", "runtime/ok.py"):
        assert ok not in found, found


def test_top_level_holds_only_the_layers_and_the_helpers():
    """Everything else lives in a layer's package: a new top-level module is a helper (and is
    added to ``HELPERS``) or belongs in one of the layers."""
    modules = {module_name(path) for path in PACKAGE.glob("*.py")} - {"lstmkit"}
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert modules == set(HELPERS)
    assert packages == set(ALLOWED)


def test_helpers_import_no_lstmkit_module():
    """The helpers are leaves: every layer may import them because they import none."""
    offending = [
        f"{name} imports {imported}"
        for name in HELPERS
        for imported in imports(PACKAGE / (name.split(".", 1)[1] + ".py"))
        if imported.split(".")[0] == "lstmkit"
    ]
    assert not offending, "\n".join(offending)
