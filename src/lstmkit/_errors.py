"""Errors about the user's data files; light (no torch, no Lightning) so that the command-line
wrappers can catch them and print one line."""

from __future__ import annotations

from pathlib import Path


class DataFileError(ValueError):
    """A data file that cannot be used; the message names the file and the problem.

    Args:
        path: the file (or a dataset name) the problem is in.
        problem: what is wrong, and where (row, column, sequence) when known.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class TrainingDivergedError(RuntimeError):
    """Training met a non-finite loss or gradient; the message names the step and a likely
    cause (raised by ``lstmkit.runtime.callbacks.NonFiniteGuard``)."""
