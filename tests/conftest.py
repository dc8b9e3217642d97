"""Fixtures for the task, data and command-line tests (helpers live in ``run_helpers``)."""

from __future__ import annotations

import pytest
from hydra.core.global_hydra import GlobalHydra

from run_helpers import compose_config


@pytest.fixture
def cfg_factory(tmp_path):
    """``cfg_factory(*overrides, name="train")`` -> a shrunk composed config in tmp_path."""

    def make(*overrides: str, name: str = "train", shrink: bool = True, subdir: str = "run"):
        return compose_config(tmp_path / subdir, overrides, config_name=name, shrink=shrink)

    yield make
    GlobalHydra.instance().clear()
