"""`AutoLSTM`: one set of torch.nn.LSTM weights, the fastest engine chosen for every call.

``build_lstm(backend="auto")`` builds this. It is a `CustomLSTM` (same parameters, options,
``state_dict`` and surface), whose forward picks, per call, from the input's device, dtype and
``lengths`` and the module's options:

* any custom-only option (layer norm, peepholes, zoneout, recurrent dropout, gate recording,
  ``implementation="reference"``): the custom path, the only one that computes them;
* CPU: the custom fused path. lstmkit's C time loop measured faster than oneDNN's fused LSTM
  (``torch.nn.LSTM`` on CPU) at the benchmark shapes and 5-30x faster with ``lengths=``
  (docs/speed); it also runs every dtype on every CPU, where oneDNN cannot build a bf16 LSTM
  on CPUs without native bf16;
* CUDA: cuDNN (torch's own ``nn.LSTM`` code path on these weights) for a plain LSTM; with
  ``lengths=``, the custom path where its Triton kernels run (``settings.triton``), else cuDNN
  on packed input;
* any other device: torch.nn.LSTM's kernels there;
* under ``torch.compile`` / ``torch.export``: the custom operator, which traces as one node
  (PyTorch refuses to trace ``nn.LSTM``).

Each distinct choice is logged once, with its reason. The weights never move or change, so
switching engines changes nothing else for the user.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from .base import State
from .cudnn import run_torch_lstm
from .custom import CustomLSTM
from .settings import settings

log = logging.getLogger(__name__)

_LOGGED: set[tuple[str, str]] = set()


def _triton_runs(x: Tensor) -> bool:
    if not (settings.triton and x.device.type == "cuda"):
        return False
    try:
        from .fastpath import triton_lstm
    except ImportError:
        return False
    return triton_lstm.available()


class AutoLSTM(CustomLSTM):
    """A `CustomLSTM` that runs each call on the fastest engine for it (see the module
    docstring). Same arguments as `CustomLSTM`."""

    def engine(self, x: Tensor, lengths: Tensor | None) -> tuple[str, str]:
        """``("custom" | "torch", reason)`` for a call on ``x`` (time-major) with ``lengths``."""
        options = self.custom_options()
        if options:
            return "custom", f"custom-only option(s) {', '.join(options)}"
        if torch.compiler.is_compiling():
            return (
                "custom",
                "torch.compile/export: the custom operator traces, cuDNN's LSTM does not",
            )
        device = x.device.type
        if device == "cpu":
            return "custom", "CPU: lstmkit's fused C time loop (faster than oneDNN's LSTM)"
        if device == "cuda":
            if lengths is not None and _triton_runs(x):
                return "custom", "CUDA with lengths=: the custom Triton path (no packing)"
            return "torch", "CUDA: cuDNN for a plain LSTM"
        return "torch", f"{device}: torch.nn.LSTM's kernels for this device"

    def custom_options(self) -> list[str]:
        """The options set on this module that only the custom path computes."""
        found = [name for name in ("layer_norm", "peephole") if getattr(self, name)]
        if self.recurrent_dropout:
            found.append("recurrent_dropout")
        if any(self.zoneout):
            found.append("zoneout")
        if self.implementation != "fused":
            found.append(f"implementation={self.implementation!r}")
        if self._recorder is not None:
            found.append("gate recording")
        return found

    def _run(self, x: Tensor, hx: State, lengths: Tensor | None) -> tuple[Tensor, State]:
        engine, reason = self.engine(x, lengths)
        if not torch.compiler.is_compiling() and (engine, reason) not in _LOGGED:
            _LOGGED.add((engine, reason))
            log.info("AutoLSTM runs on the %s path: %s", engine, reason)
        if engine == "custom":
            return super()._run(x, hx, lengths)
        return run_torch_lstm(self, x, hx, lengths)

    def flatten_parameters(self) -> None:
        """On CUDA, torch.nn.LSTM's own: the weights become views of one cuDNN buffer (else
        cuDNN copies them every call). Elsewhere a no-op."""
        nn.RNNBase.flatten_parameters(self)

    def _apply(self, fn, recurse=True):
        result = super()._apply(fn, recurse)
        self.flatten_parameters()  # as torch.nn.LSTM does after .to(device)
        return result


torch.serialization.add_safe_globals([AutoLSTM])
