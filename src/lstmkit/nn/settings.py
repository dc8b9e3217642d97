"""One switchboard for the custom core's fast paths, in the spirit of ``torch.backends.*.flags()``.

Every switch lives in `settings` (a `FastPathSettings`), read from the environment once, here,
when lstmkit is imported; `flags` changes some of them for a ``with`` block and restores them
after (tests and benchmarks compare the paths this way). Nothing else in lstmkit reads these
variables or keeps a switch of its own.

==========================  ===============================  ========  ==========================
field                       environment variable             default   what it does
==========================  ===============================  ========  ==========================
``native``                  ``LSTMKIT_NATIVE``               ``1``     C kernels on CPU (off:
                                                                       torch ops, same numbers)
``native_loop``             ``LSTMKIT_NATIVE_LOOP``          ``1``     the whole time loop in C
                                                                       (off: a Python loop that
                                                                       calls a C kernel a step)
``own_gemm``                ``LSTMKIT_NATIVE_GEMM``          ``1``     lstmkit's own float32 GEMM
                                                                       in the C loop (off:
                                                                       torch's BLAS, MKL)
``onednn``                  ``LSTMKIT_ONEDNN``               ``1``     oneDNN's packed GEMM for
                                                                       the Python loop and the
                                                                       input projection
``triton``                  ``LSTMKIT_TRITON``               ``1``     Triton kernels on CUDA
                                                                       where they cover the call
``reuse_workspace``         ``LSTMKIT_REUSE_WORKSPACE``      ``1``     keep the backward's
                                                                       temporaries between calls
``workspace_limit_mb``      ``LSTMKIT_WORKSPACE_LIMIT_MB``   ``1024``  the kept buffers' bound
                                                                       (MiB, per thread; larger
                                                                       ones are not kept)
``cache_dir``               ``LSTMKIT_CACHE_DIR``            ``~/.ca   where a source tree
                                                                che/ls    compiles its kernels at
                                                                tmkit``   first use
==========================  ===============================  ========  ==========================

Thresholds that are measurements rather than switches (`onednn_min_macs`,
`native_loop_max_macs`, `parallel_min_macs`, `parallel_min_rows`) are fields too, so a test can
move them; their values are explained where they are defined below.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

ENVIRONMENT = {
    "native": "LSTMKIT_NATIVE",
    "native_loop": "LSTMKIT_NATIVE_LOOP",
    "own_gemm": "LSTMKIT_NATIVE_GEMM",
    "onednn": "LSTMKIT_ONEDNN",
    "triton": "LSTMKIT_TRITON",
    "reuse_workspace": "LSTMKIT_REUSE_WORKSPACE",
    "workspace_limit_mb": "LSTMKIT_WORKSPACE_LIMIT_MB",
    "cache_dir": "LSTMKIT_CACHE_DIR",
}


@dataclasses.dataclass
class FastPathSettings:
    """The custom core's switches (see the module docstring for the table)."""

    native: bool = True
    native_loop: bool = True
    own_gemm: bool = True
    onednn: bool = True
    triton: bool = True
    reuse_workspace: bool = True
    workspace_limit_mb: int = 1024
    cache_dir: Path = dataclasses.field(default_factory=lambda: Path.home() / ".cache" / "lstmkit")
    # oneDNN's packed GEMM pays from ~0.5M multiply-adds a call: below, its ~9 us fixed cost
    # loses to torch.mm (2-core AMD EPYC).
    onednn_min_macs: int = 1 << 19
    # With a BLAS (not lstmkit's own GEMM) the C loop runs only up to this many multiply-adds a
    # step: above it the per-step oneDNN GEMM from Python wins (MKL measured 1.3-3.5x slower
    # than oneDNN at (16..64 x 128..256 x 512..1024) on the same CPU).
    native_loop_max_macs: int = 1 << 22
    # Row-parallel time loops: below this many multiply-adds per call, or with fewer rows per
    # thread, the thread hand-off (~20 us) costs more than it saves.
    parallel_min_macs: int = 1 << 22
    parallel_min_rows: int = 4


def _flag(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r}: use 1 or 0")


def from_environment(environ: dict[str, str] | None = None) -> FastPathSettings:
    """Settings from ``environ`` (default ``os.environ``); unset variables keep the defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for field in dataclasses.fields(FastPathSettings):
        variable = ENVIRONMENT.get(field.name)
        if variable is None or variable not in environ:
            continue
        raw = environ[variable]
        if field.type in ("bool", bool):
            values[field.name] = _flag(raw, variable)
        elif field.name == "cache_dir":
            values[field.name] = Path(raw).expanduser()
        else:
            try:
                values[field.name] = int(raw)
            except ValueError:
                raise ValueError(f"{variable}={raw!r}: expected an integer") from None
    return FastPathSettings(**values)


settings = from_environment()


@contextlib.contextmanager
def flags(**changes: object) -> Iterator[FastPathSettings]:
    """Change some `settings` for a ``with`` block: ``with flags(native=False): ...``.

    Unknown names raise ``TypeError`` listing the valid ones. Restored on exit, also on error.
    """
    names = {field.name for field in dataclasses.fields(FastPathSettings)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise TypeError(f"unknown fast-path setting(s) {unknown}; valid: {sorted(names)}")
    before = {name: getattr(settings, name) for name in changes}
    try:
        for name, value in changes.items():
            setattr(settings, name, value)
        yield settings
    finally:
        for name, value in before.items():
            setattr(settings, name, value)
