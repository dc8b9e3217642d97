"""Fixtures for the task, data and command-line tests (helpers live in ``run_helpers``)."""

from __future__ import annotations

import os

import pytest
import torch

# Triton reads TRITON_INTERPRET when it is first imported, and importing lstmkit.cli.train/tasks/data
# (Lightning) imports it: set it here, before collection imports any test module, or the Triton
# tests in tests/nn fail whenever the whole suite runs (they pass alone). A CUDA machine runs the
# compiled kernels.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
from hydra.core.global_hydra import GlobalHydra

from run_helpers import compose_config


@pytest.fixture(autouse=True, scope="session")
def _native_kernels_first():
    """Load lstmkit's native kernels before any test loads scikit-learn (aeon's datasets do):
    kernels that load beside a second OpenMP runtime keep their loops on one thread, and the
    row-parallel tests would skip instead of checking the path that runs by default."""
    from lstmkit.nn.fastpath import native

    native.kernels()


@pytest.fixture
def cfg_factory(tmp_path):
    """``cfg_factory(*overrides, name="train")`` -> a shrunk composed config in tmp_path."""

    def make(*overrides: str, name: str = "train", shrink: bool = True, subdir: str = "run"):
        return compose_config(tmp_path / subdir, overrides, config_name=name, shrink=shrink)

    yield make
    GlobalHydra.instance().clear()
