"""Panels of the Monash forecasting archive that ship inside aeon's wheel (no network).

``MonashDataModule(name="m1_yearly_dataset")``: the 181 yearly series of the M1 competition
(Makridakis et al. 1982; Godahewa et al. 2021's ``.tsf``), read with aeon's
``load_forecasting`` into a long table (``series``, ``t`` = 0, 1, ... within each series, ``y``)
and forecast as any ``data=table`` panel. The archive's protocol: the last ``horizon`` values
of each series are its test values (6 for M1 yearly), MASE scaled by the in-sample naive
forecast (``season=1`` for yearly data) of all values before them (so ``val_steps=0``: the
whole rest is the training part).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lstmkit.data.panel import PanelDataModule

#: Datasets of the archive that aeon ships (``aeon/datasets/data``).
BUNDLED = ("m1_yearly_dataset",)


class MonashDataModule(PanelDataModule):
    """A panel of the Monash archive bundled with aeon, as a long table.

    Args:
        name: the dataset (``"m1_yearly_dataset"``).
        **kwargs: :class:`PanelDataModule`'s arguments other than ``path``, ``id``,
            ``target`` and ``time`` (``window``, ``horizon``, ``val_steps``, ``test_steps``,
            ``scaler``, ``season``, ``short_series``, ...).
    """

    def __init__(self, name: str = "m1_yearly_dataset", **kwargs: Any) -> None:
        if name not in BUNDLED:
            raise ValueError(f"name={name!r}: aeon bundles {', '.join(BUNDLED)}")
        for key in ("path", "id", "target", "time"):
            if key in kwargs:
                raise ValueError(f"{key}={kwargs[key]!r} is set by the dataset: remove it")
        super().__init__(f"aeon:{name}", id="series", target="y", time="t", **kwargs)
        self.hparams.pop("path", None)
        self.hparams.pop("id", None)
        self.hparams.pop("target", None)
        self.hparams.pop("time", None)
        self.hparams["name"] = name
        self.name = name

    def read_frame(self, path: str) -> Any:
        if path != self.path:  # lstmkit-predict on a user's table
            return super().read_frame(path)
        import pandas as pd

        from lstmkit.data.files import aeon_loader

        raw = aeon_loader("load_forecasting")(self.name)
        lengths = [len(v) for v in raw["series_value"]]
        return pd.DataFrame({
            "series": np.repeat(raw["series_name"].to_numpy(), lengths),
            "t": np.concatenate([np.arange(n) for n in lengths]),
            "y": np.concatenate([np.asarray(v, dtype=np.float64) for v in raw["series_value"]]),
        })  # fmt: skip


__all__ = ["BUNDLED", "MonashDataModule"]
