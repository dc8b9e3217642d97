"""Hatch build hook: compile lstmkit's C kernels into the wheel (one library per vector ISA).

Runs at ``pip install .`` / ``pip install -e .`` / ``python -m build``. The kernels are plain C
shared libraries loaded with ctypes (no Python C API, no torch headers), so the hook needs only
a C compiler; which flags and ISA builds is decided in ``src/lstmkit/nn/fastpath/kernel_build.py``, the
same module the run-time fallback uses. Without a compiler the wheel is built without kernels
and says so; lstmkit then compiles them at first use where a compiler exists, else runs its
torch-op path.

* wheel: the libraries go into ``lstmkit/nn/fastpath/_lib/`` and the wheel is tagged for this platform;
* editable install: they are built into ``src/lstmkit/nn/fastpath/_lib/`` (ignored by git), where the
  source tree loads them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def _kernel_build(root: Path):
    path = root / "src" / "lstmkit" / "nn" / "fastpath" / "kernel_build.py"
    spec = importlib.util.spec_from_file_location("_lstmkit_kernel_build", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class KernelBuildHook(BuildHookInterface):
    PLUGIN_NAME = "lstmkit-kernels"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        kernel_build = _kernel_build(root)
        if version == "editable":
            out_dir = root / "src" / "lstmkit" / "nn" / "fastpath" / "_lib"
        else:
            out_dir = Path(self.directory) / ".lstmkit-kernels"
        if kernel_build.find_compiler() is None:
            print(
                "lstmkit: no C compiler (CC, cc or gcc): building without the native kernels; "
                "lstmkit will use its torch-op path (same numbers, slower)",
                file=sys.stderr,
            )
            return
        built = kernel_build.build_all(out_dir)
        names = ", ".join(path.name for path in built) or "none"
        print(f"lstmkit: native kernels built: {names}", file=sys.stderr)
        if not built:
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":
            for path in built:
                build_data["force_include"][str(path)] = f"lstmkit/nn/fastpath/_lib/{path.name}"
