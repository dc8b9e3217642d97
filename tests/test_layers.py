"""The package's layers: nn -> tasks -> data -> research -> commands. A lower layer never imports
a higher one, by an absolute import (``import lstmkit.data``, ``from lstmkit import data``) or a
relative one (``from ..data import x``, ``from .. import data``)."""

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
    "lstmkit.forecast_metrics",
)
# Run infrastructure the commands share; research builds on some of it.
INFRASTRUCTURE = ("lstmkit.checkpoints", "lstmkit.runs", "lstmkit.config_checks", "lstmkit.plots")
# What each layer may import from lstmkit: itself, the layers below it, the helpers.
ALLOWED = {
    "nn": ("lstmkit.nn", *HELPERS),
    "tasks": ("lstmkit.tasks", "lstmkit.nn", *HELPERS),
    "data": ("lstmkit.data", "lstmkit.nn", *HELPERS),
    "research": (
        "lstmkit.research",
        "lstmkit.tasks",
        "lstmkit.data",
        "lstmkit.nn",
        *HELPERS,
        *INFRASTRUCTURE,
    ),
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
    """The check sees through relative imports: each of these, in ``lstmkit/nn``, is caught."""
    fake = tmp_path / "lstmkit"
    (fake / "nn" / "sub").mkdir(parents=True)
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    sources = {
        "nn/a.py": "from ..tasks import SequenceTask\n",
        "nn/b.py": "from .. import data\n",
        "nn/sub/c.py": "from ...train import main\n",
        "nn/__init__.py": "from ..research.gates import x\n",
        "nn/d.py": "from lstmkit import evaluate\n",
        "nn/ok.py": "from .cell import lstm_step\nfrom . import settings\nfrom .. import _validation\n",
    }
    for rel, text in sources.items():
        (fake / rel).write_text(text)
    found = "\n".join(violations("nn"))
    for rel, higher in [
        ("nn/a.py", "lstmkit.tasks"),
        ("nn/b.py", "lstmkit.data"),
        ("nn/sub/c.py", "lstmkit.train"),
        ("nn/__init__.py", "lstmkit.research.gates"),
        ("nn/d.py", "lstmkit.evaluate"),
    ]:
        assert f"{rel} imports {higher}" in found, found
    assert "nn/ok.py" not in found, found
