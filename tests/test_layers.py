"""The package's layers: nn -> tasks -> data -> entry points. A lower layer never imports a higher one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "lstmkit"
# What each layer may not import (its higher layers and the entry points).
FORBIDDEN = {
    "nn": ("lstmkit.tasks", "lstmkit.data", "lstmkit.research", "lstmkit.train"),
    "tasks": ("lstmkit.data", "lstmkit.research", "lstmkit.train", "lstmkit.evaluate"),
    "data": ("lstmkit.tasks", "lstmkit.research", "lstmkit.train", "lstmkit.evaluate"),
}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_lower_layers_never_import_higher_ones(layer):
    offending = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for name in _imports(path)
        if name.startswith(FORBIDDEN[layer])
    ]
    assert not offending, "\n".join(offending)


def test_nn_does_not_need_lightning():
    """The cores are plain PyTorch: research code can use them without Lightning."""
    offending = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / "nn").rglob("*.py"))
        for name in _imports(path)
        if name.split(".")[0] in ("lightning", "torchmetrics", "hydra", "omegaconf")
    ]
    assert not offending, "\n".join(offending)
