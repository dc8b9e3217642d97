"""The C kernels are built at install: a wheel carries one library per vector ISA, and an
installed lstmkit loads the best one with no C compiler anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from lstmkit.nn.fastpath import kernel_build, native

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_loads_its_kernels_in_a_fresh_venv_without_a_compiler(tmp_path):
    if kernel_build.find_compiler() is None:
        pytest.skip("no C compiler here to build the wheel's kernels")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(ROOT)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (wheel,) = dist.glob("lstmkit-*.whl")
    assert not wheel.name.endswith("-none-any.whl"), "a wheel with kernels is platform-specific"
    names = zipfile.ZipFile(wheel).namelist()
    libraries = [n for n in names if n.startswith("lstmkit/nn/fastpath/_lib/lstm_kernels-")]
    assert {n.split("-")[1] for n in libraries} == set(kernel_build.variants())

    # A fresh venv: lstmkit from the wheel; torch and the rest borrowed from this environment's
    # site-packages by a plain path (so this environment's editable lstmkit stays out of it).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, str(wheel)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    Path(site, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    no_compiler = tmp_path / "empty-bin"  # PATH with no cc/gcc, and CC unset
    no_compiler.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CC", "PYTHONPATH")}  # the wheel's own
    env |= {"PATH": str(no_compiler), "LSTMKIT_CACHE_DIR": str(tmp_path / "cache")}
    probe = (
        "import logging, lstmkit; logging.basicConfig(level=logging.INFO)\n"
        "from lstmkit.nn.fastpath import kernel_build, native\n"
        "assert kernel_build.find_compiler() is None\n"
        "k = native.kernels()\n"
        "print(lstmkit.__file__); print(k.origin)\n"
    )
    done = subprocess.run([str(python), "-c", probe], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    location, origin = done.stdout.strip().splitlines()
    assert location.startswith(site)
    best = native.runnable_variants()[0]
    assert origin.startswith(f"{best} build, installed"), origin
    assert "lstmkit native kernels: " + origin in done.stderr  # the log line says which build
    assert not (tmp_path / "cache").exists()  # nothing was compiled


def test_a_library_of_another_source_is_never_loaded(tmp_path, monkeypatch):
    """Installed libraries carry the source's hash: a stale build is skipped (compiled anew)."""
    stale = tmp_path / "lib" / kernel_build.library_name("portable", "0" * 16)
    stale.parent.mkdir()
    stale.write_bytes(b"not a library")
    monkeypatch.setattr(native, "INSTALLED_DIR", stale.parent)
    monkeypatch.setattr(native.settings, "cache_dir", tmp_path / "cache")
    if kernel_build.find_compiler() is None:
        pytest.skip("no C compiler here for the fallback build")
    library, origin = native._load(["portable"])
    assert "compiled at first use" in origin and library is not None
