"""UCR/UEA archive datasets by name, through aeon (``pip install 'lstmkit[datasets]'``).

``JapaneseVowels`` and ``BasicMotions`` (and a few others) ship inside aeon's wheel and load
with no network. Any other archive name is fetched by aeon's own download (into
``extract_path``) when there is internet, and fails with a clear error when there is not.
"""

from __future__ import annotations

from typing import Any

from lstmkit._errors import DataFileError
from lstmkit.data.files import aeon_loader
from lstmkit.data.sequences import LabelledSequencesDataModule, RawSplit

#: Config names -> archive names of the datasets this package has configs for.
NAMED = {
    "japanese_vowels": "JapaneseVowels",
    "basic_motions": "BasicMotions",
}


class ArchiveDataModule(LabelledSequencesDataModule):
    """A UCR/UEA archive dataset by name, with its own train/test split; validation is cut off
    the training split (``val_fraction``).

    Example:
        >>> dm = ArchiveDataModule("JapaneseVowels", batch_size=32)  # doctest: +SKIP
        >>> dm.model_kwargs()  # doctest: +SKIP
        {'input_size': 12, 'num_classes': 9, 'per_step': False}

    Args:
        name: the archive's name (``"JapaneseVowels"``, ``"BasicMotions"``, ``"GunPoint"``...)
            or a config-style name (``"japanese_vowels"``).
        task: ``"classification"`` (aeon's ``load_classification``) or ``"regression"``
            (``load_regression``).
        extract_path: where aeon looks for (and downloads) data; None: aeon's default.
        standardize, **kwargs: see :class:`LabelledSequencesDataModule`.
    """

    def __init__(
        self,
        name: str,
        task: str = "classification",
        extract_path: str | None = None,
        standardize: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(task, standardize, **kwargs)
        self._save_hparams(locals())
        self.name = NAMED.get(name, name)
        self.extract_path = extract_path

    def _load(self, split: str) -> RawSplit:
        from urllib.error import URLError

        fn = "load_classification" if self.task == "classification" else "load_regression"
        loader = aeon_loader(fn)
        source = f"{self.name} ({split} split, aeon.datasets.{fn})"
        try:
            x, y = loader(self.name, split=split, extract_path=self.extract_path)
        except (URLError, OSError, ConnectionError, TimeoutError) as err:
            raise DataFileError(
                source,
                f"not bundled with aeon and could not be downloaded ({err}); datasets that load "
                f"offline include {', '.join(sorted(NAMED.values()))}; or pass a downloaded "
                "file with data=sequences data.path=<name>_TRAIN.ts data.test_path=<name>_TEST.ts",
            ) from err
        except ValueError as err:
            raise DataFileError(source, f"aeon cannot load it: {err}") from err
        seqs = [s.T.astype("float32") for s in x]  # (C, T_i) -> (T_i, C)
        return seqs, y, source

    def read_splits(self) -> tuple[RawSplit, RawSplit | None]:
        return self._load("train"), self._load("test")


__all__ = ["NAMED", "ArchiveDataModule"]
