"""Datasets bundled with aeon (the ``datasets`` extra) load offline; JapaneseVowels trains."""

from __future__ import annotations

from urllib.error import URLError

import pytest
from helpers_data import SMALL_RUN

from lstmkit._errors import DataFileError
from lstmkit.cli.train import train
from lstmkit.data import AirlineDataModule, ArchiveDataModule
from run_helpers import run_command

pytest.importorskip("aeon", reason="needs the datasets extra: pip install 'lstmkit[datasets]'")


def test_japanese_vowels_and_basic_motions_load_offline():
    jv = ArchiveDataModule("japanese_vowels")
    assert jv.model_kwargs() == {"input_size": 12, "num_classes": 9, "per_step": False}
    lengths = jv.splits["test"].lengths
    assert len(jv.splits["test"]) == 370 and lengths.min() == 7 and lengths.max() == 29
    bm = ArchiveDataModule("BasicMotions")
    assert bm.model_kwargs()["input_size"] == 6 and bm.class_names == sorted(bm.class_names)
    assert len(bm.splits["test"]) == 40


def test_airline_series_loads_offline():
    dm = AirlineDataModule(window=12, horizon=3)
    kw = dm.model_kwargs()
    assert kw["input_size"] == 1 and kw["horizon"] == 3
    assert sum(len(dm.splits[s].inputs) for s in ("train",)) == 144


def test_an_archive_name_that_needs_the_network_fails_clearly(monkeypatch):
    import aeon.datasets

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(aeon.datasets, "load_classification", offline)
    with pytest.raises(DataFileError, match=r"FordA .*could not be downloaded .*JapaneseVowels"):
        ArchiveDataModule("FordA").setup()


@pytest.mark.slow
def test_experiment_japanese_vowels_trains_and_beats_chance(cfg_factory):
    cfg = cfg_factory(
        "experiment=japanese_vowels", *SMALL_RUN, "model.encoder.hidden_size=32",
        "trainer.max_epochs=6", shrink=False,
    )  # fmt: skip
    metrics = train(cfg)
    assert metrics["test/acc"] > 0.6, metrics  # chance 1/9; the full run reaches ~0.96
    assert metrics["baseline/acc"] < 0.15


@pytest.mark.slow
def test_experiment_japanese_vowels_from_the_command_line(tmp_path):
    proc = run_command(
        ["lstmkit-train", "experiment=japanese_vowels", "trainer.max_epochs=4",
         "~callbacks.rich_progress_bar", f"paths.log_dir={tmp_path}"],
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test/acc" in proc.stdout and "Trivial baseline" in proc.stdout
