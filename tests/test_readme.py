"""The README's Python examples run as written (the ones that need no training run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
# Self-contained examples: they build what they use (others continue a previous block or train).
RUNNABLE = [b for b in BLOCKS if "load_state_dict(cudnn.state_dict())" in b]


def test_the_readme_has_the_core_example():
    assert RUNNABLE, "the README lost its lstmkit.nn example"


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.splitlines()[0][:40])
def test_readme_example_runs(block):
    exec(compile(block, str(README), "exec"), {"__name__": "readme_example"})
