"""The research commands exist as console scripts and as modules, and fail in one line."""

from __future__ import annotations

import sys

import pytest

from run_helpers import REPO, VENV_BIN, run_command


@pytest.mark.parametrize("command", ["lstmkit-inspect", "lstmkit-robustness", "lstmkit-export"])
def test_missing_checkpoint_is_one_line_and_exit_2(command, tmp_path):
    result = run_command([str(VENV_BIN / command), f"paths.log_dir={tmp_path}"], REPO)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"{command}: error: ckpt_path is required but unset ('???'): "
        "pass ckpt_path=<a checkpoint path>"
    )


@pytest.mark.parametrize("module", ["inspect", "robustness", "export"])
def test_python_dash_m_help(module):
    result = run_command([sys.executable, "-m", f"lstmkit.cli.{module}", "--help"], REPO)
    assert result.returncode == 0, result.stderr
    assert "ckpt_path" in result.stdout
