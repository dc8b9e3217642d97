"""Small argument checks shared by ``lstmkit.tasks`` and ``lstmkit.data``.

Every message starts with the argument name and its value (``"seq_len=-5: must be ..."``), so the
command line can prefix the config group (``data.seq_len=-5: must be ...``) and name the key.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an int ``>= minimum``, else raise ``ValueError``/``TypeError``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}={value!r}: must be an integer >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name}={value!r}: must be an integer >= {minimum}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (Python's or NumPy's), else raise ``TypeError``: a
    switch given as ``1`` or ``"false"`` is refused, not read by its truthiness."""
    if isinstance(value, bool) or (
        type(value).__name__ in ("bool_", "bool") and hasattr(value, "dtype")
    ):
        return bool(value)
    raise TypeError(f"{name}={value!r}: must be true or false")


def check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    high_inclusive: bool = True,
) -> float:
    """Return ``float(value)`` if it lies in ``[low, high]`` (or ``[low, high)``), else raise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name}={value!r}: must be a number")
    lo = "-inf" if low is None else low
    hi = "inf" if high is None else high
    interval = f"[{lo}, {hi}{']' if high_inclusive else ')'}"
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if (low is not None and value < low) or too_high:
        raise ValueError(f"{name}={value!r}: must lie in {interval}")
    return float(value)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name}={value!r}: must be one of {', '.join(choices)}")
    return value
