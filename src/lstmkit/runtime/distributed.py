"""Lightning's DDP strategy with a clean exit, and small rank helpers.

``configs/trainer/ddp.yaml`` (GPUs, NCCL) and ``ddp_cpu.yaml`` (CPU, gloo) use
:class:`DDPStrategy`: Lightning's own, which also calls
``torch.distributed.destroy_process_group()`` in ``teardown``. Without it a gloo process group
that is still alive when the interpreter exits occasionally aborts the process (SIGABRT) after
training has finished. A later ``trainer.test`` on the same trainer sets the group up again.
After the model is moved and wrapped, :func:`flatten_rnn_parameters` gives cuDNN LSTMs their
contiguous weight buffer back (no "weights are not part of single contiguous chunk" warning).
"""

from __future__ import annotations

import os

import torch
from lightning.pytorch.strategies import DDPStrategy as _LightningDDPStrategy

from lstmkit._logging import get_logger

log = get_logger(__name__)


def is_launched_rank() -> bool:
    """Whether this process is a DDP worker started by Lightning's launcher (local rank > 0).

    Such a process re-runs the command line with ``hydra.run.dir`` set to rank 0's run folder:
    it must write nothing of its own there and must not refuse the folder rank 0 has started.
    """
    return int(os.environ.get("LOCAL_RANK", "0")) > 0


def flatten_rnn_parameters(module: torch.nn.Module | None) -> int:
    """``flatten_parameters()`` on every ``torch.nn.RNNBase`` inside (the cudnn backend).

    cuDNN wants an LSTM's weights in one contiguous buffer; after a model is moved or
    replicated they may not be, and torch then warns and copies them on every call. A no-op on
    CPU. Returns how many modules were visited.
    """
    count = 0
    for sub in module.modules() if module is not None else ():
        if isinstance(sub, torch.nn.RNNBase):
            sub.flatten_parameters()
            count += 1
    return count


class DDPStrategy(_LightningDDPStrategy):
    """``lightning.pytorch.strategies.DDPStrategy`` that destroys the process group on teardown.

    Takes exactly Lightning's arguments (``process_group_backend="gloo"`` on CPU, ``"nccl"``
    on GPUs; ``find_unused_parameters``, ``static_graph``, ...).
    """

    def setup(self, trainer) -> None:
        super().setup(trainer)
        # the model was moved and wrapped: give cuDNN its contiguous weight buffer again
        flatten_rnn_parameters(self.lightning_module)

    def teardown(self) -> None:
        super().teardown()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()  # no rank leaves while another still talks to it
            torch.distributed.destroy_process_group()
            log.debug("destroyed the process group")
