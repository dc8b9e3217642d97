"""Loggers that speak only on the process of global rank 0, so multi-process runs (DDP) log once.

The rank is Lightning's ``rank_zero_only.rank`` once Lightning is imported (it is set for
spawned processes too), else the launcher's ``RANK``/``LOCAL_RANK`` environment variables;
this module imports nothing heavy.
"""

from __future__ import annotations

import logging
import os
import sys


def global_rank() -> int:
    rank_zero = sys.modules.get("lightning_utilities.core.rank_zero")
    rank = getattr(getattr(rank_zero, "rank_zero_only", None), "rank", None)
    if rank is not None:
        return int(rank)
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        if key in os.environ:
            return int(os.environ[key])
    return 0


class RankZeroLogger(logging.LoggerAdapter):
    """A ``logging`` logger that drops records on processes other than rank 0."""

    def isEnabledFor(self, level: int) -> bool:
        return global_rank() == 0 and self.logger.isEnabledFor(level)


def get_logger(name: str) -> RankZeroLogger:
    """``logging.getLogger(name)``, speaking on rank 0 only."""
    return RankZeroLogger(logging.getLogger(name), {})
