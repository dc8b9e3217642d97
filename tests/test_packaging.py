"""The configs ship in the wheel: a non-editable install runs the commands from any folder."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from run_helpers import REPO, SHRINK, TINY_DATA, TINY_MODEL, run_command


def _build_wheel(out: Path) -> Path:
    """``pip wheel --no-deps --no-build-isolation``: offline, with hatchling from the dev extra."""
    if importlib.util.find_spec("hatchling") is None:
        pytest.skip("hatchling is not installed (pip install -e '.[dev]' installs it)")
    args = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    args += ["-w", str(out), str(REPO)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"building the wheel failed:\n{result.stderr[-2000:]}"
    (wheel,) = out.glob("lstmkit-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed non-editable; the project's venv lends the
    dependencies (torch, lightning, ...) through a .pth placed after the venv's own packages."""
    root = tmp_path_factory.mktemp("pkg")
    wheel = _build_wheel(root / "dist")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "zz_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-index", str(wheel)],
        check=True, timeout=300,
    )  # fmt: skip
    return venv


@pytest.mark.slow
def test_wheel_contains_the_configs(installed):
    (wheel,) = (installed.parent / "dist").glob("lstmkit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    repo_configs = {
        "lstmkit/configs/" + p.relative_to(REPO / "configs").as_posix()
        for p in (REPO / "configs").rglob("*.yaml")
    }
    assert repo_configs <= names, sorted(repo_configs - names)[:5]


@pytest.mark.slow
def test_installed_commands_run_outside_the_repo(installed, tmp_path):
    bin_dir = installed / "bin"
    where = run_command(
        [str(bin_dir / "python"), "-c",
         "import lstmkit, lstmkit.runtime._config_dir as c; print(lstmkit.__file__); print(c.CONFIG_DIR)"],
        tmp_path,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    module_file, config_dir = where.stdout.split()
    assert module_file.startswith(str(installed)) and config_dir.startswith(str(installed))

    job = run_command([str(bin_dir / "lstmkit-train"), "--cfg", "job"], tmp_path)
    assert job.returncode == 0, job.stderr
    assert "lstmkit.data.AddingDataModule" in job.stdout

    user_dir = tmp_path / "my_configs" / "data"
    user_dir.mkdir(parents=True)
    (user_dir / "short_sine.yaml").write_text(
        "defaults:\n  - sine\n  - _self_\nseq_len: 12\n"
    )  # a user config building on a packaged one
    custom = run_command(
        [str(bin_dir / "lstmkit-train"), "--config-dir", str(tmp_path / "my_configs"),
         "data=short_sine", "--cfg", "job"],
        tmp_path,
    )  # fmt: skip
    assert custom.returncode == 0, custom.stderr
    assert "seq_len: 12" in custom.stdout and "SineDataModule" in custom.stdout

    run = run_command([str(bin_dir / "lstmkit-train"), *SHRINK, *TINY_DATA, *TINY_MODEL], tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    (metrics,) = (tmp_path / "outputs" / "train" / "runs").glob("*/metrics.json")
    assert "test/mse" in json.loads(metrics.read_text())["test"]
