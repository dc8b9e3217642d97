"""How `_kernels.c` is compiled: one source of truth for the install-time build and the
first-use fallback.

Imported by ``hatch_build.py`` (at ``pip install``, where torch may not be importable), so it
imports nothing but the standard library. The package ships one library per vector ISA
(`variants`); `lstmkit.nn.fastpath.native` loads the best one this CPU runs. Library names carry a hash of
the source and the flags, so a library built from an older ``_kernels.c`` or with other flags is
never loaded by mistake.

No finite-math assumptions: NaN and ±Inf flow through the kernels as through torch's ops.
``-ffast-math``'s other relaxations stay (reassociation, no errno, no traps: the vector code is
what it was; the finite-math-free build measured 2-24 % slower without them, in single-thread CPU
time), ``-fno-finite-math-only`` takes back the one that let the compiler assume NaN and Inf
never occur. The vector ``exp`` comes from glibc's libmvec, declared in the source itself (GCC
only declares it when every fast-math flag is on). Compiled and linked in two steps: a link line
with ``-ffast-math`` would add crtfastmath.o, which flushes denormals to zero for the whole
process when the library loads.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("_kernels.c")
COMMON_FLAGS = ["-O3", "-ffast-math", "-fno-finite-math-only", "-fPIC"]
# Each build's ISA flags, best first. The names are also what `lstmkit.nn.fastpath.native` logs.
X86_VARIANTS = {
    "avx512": ["-mavx512f", "-mavx512dq", "-mavx2", "-mfma"],
    "avx2": ["-mavx2", "-mfma"],
    "portable": [],
}
ARM_VARIANTS = {"neon": []}  # NEON is part of the aarch64 baseline


def machine() -> str:
    name = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(name, name)


def variants(arch: str | None = None) -> dict[str, list[str]]:
    """ISA builds for ``arch`` (default: this machine), best first; ``{}`` where none is made."""
    arch = arch or machine()
    if arch == "x86_64":
        return dict(X86_VARIANTS)
    if arch == "aarch64":
        return dict(ARM_VARIANTS)
    return {"portable": []}


def build_hash(variant: str, source: Path = SOURCE) -> str:
    """A hash of the source and the flags a build uses: a library built otherwise never loads."""
    flags = " ".join([*COMMON_FLAGS, *variants().get(variant, [])])
    return hashlib.sha256(source.read_bytes() + flags.encode()).hexdigest()[:16]


def library_name(variant: str, digest: str) -> str:
    suffix = ".dylib" if platform.system() == "Darwin" else ".so"
    return f"lstm_kernels-{variant}-{digest}{suffix}"


def find_compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def compile_library(target: Path, isa_flags: list[str], compiler: str | None = None) -> None:
    """Compile `SOURCE` into ``target`` with OpenMP if the compiler has it (Linux: it links the
    ``libgomp.so.1`` torch's wheel loads, so the loops run on torch's own threads), else with
    OpenMP's SIMD pragmas only. Raises ``RuntimeError`` with the compiler's message."""
    compiler = compiler or find_compiler()
    if compiler is None:
        raise RuntimeError("no C compiler found (set CC or install gcc/clang)")
    target.parent.mkdir(parents=True, exist_ok=True)
    openmp_choices = [["-fopenmp"], ["-fopenmp-simd"]]
    if platform.system() != "Linux":
        openmp_choices = openmp_choices[1:]
    errors = []
    for openmp in openmp_choices:
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            obj, built = Path(tmp) / "kernels.o", Path(tmp) / target.name
            link_openmp = [flag for flag in openmp if flag == "-fopenmp"]
            commands = (
                [compiler, *COMMON_FLAGS, *isa_flags, *openmp, "-c", str(SOURCE), "-o", str(obj)],
                [compiler, "-shared", str(obj), "-o", str(built), "-lm", *link_openmp],
            )
            for command in commands:
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    errors.append(f"{' '.join(command)} failed:\n{done.stderr.strip()}")
                    break
            else:
                os.replace(built, target)  # atomic: another process never loads half a file
                return
    raise RuntimeError("\n".join(errors))


def build_all(out_dir: Path, compiler: str | None = None) -> list[Path]:
    """Every ISA build of this machine's architecture into ``out_dir``; returns the libraries
    built (those the compiler cannot build, e.g. an old compiler without AVX-512, are left
    out). Libraries of older sources or flags in ``out_dir`` are removed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    current = {library_name(variant, build_hash(variant)) for variant in variants()}
    for old in out_dir.glob("lstm_kernels-*"):
        if old.name not in current:
            old.unlink()
    built = []
    for variant, isa_flags in variants().items():
        target = out_dir / library_name(variant, build_hash(variant))
        try:
            compile_library(target, isa_flags, compiler)
        except RuntimeError:
            continue
        built.append(target)
    return built
