"""Datamodules yielding ``(x, y, lengths)`` batches: synthetic tasks, files, named datasets.

This layer never imports ``lstmkit.tasks``: tasks and data meet only in the entry points, where
:meth:`SequenceDataModule.model_kwargs` hands the data's sizes to the task.
"""

from lstmkit.data.adding import AddingDataModule
from lstmkit.data.addition import AdditionDataModule
from lstmkit.data.archive import ArchiveDataModule
from lstmkit.data.base import (
    IGNORE_INDEX,
    SequenceDataModule,
    SequenceDataset,
    SyntheticDataModule,
)
from lstmkit.data.copy_memory import CopyDataModule
from lstmkit.data.counting import CountingDataModule
from lstmkit.data.filebase import FileDataModule
from lstmkit.data.monash import MonashDataModule
from lstmkit.data.panel import PanelDataModule
from lstmkit.data.sequences import SequencesDataModule
from lstmkit.data.sine import SineDataModule
from lstmkit.data.stream import StreamDataModule
from lstmkit.data.table import LabelTableDataModule, TableDataModule
from lstmkit.data.text import TextDataModule
from lstmkit.data.timeseries import AirlineDataModule, CSVDataModule
from lstmkit.data.waveform import WaveformDataModule

__all__ = [
    "IGNORE_INDEX",
    "AddingDataModule",
    "AdditionDataModule",
    "AirlineDataModule",
    "ArchiveDataModule",
    "CSVDataModule",
    "CopyDataModule",
    "CountingDataModule",
    "FileDataModule",
    "LabelTableDataModule",
    "MonashDataModule",
    "PanelDataModule",
    "SequenceDataModule",
    "SequenceDataset",
    "SequencesDataModule",
    "SineDataModule",
    "StreamDataModule",
    "SyntheticDataModule",
    "TableDataModule",
    "TextDataModule",
    "WaveformDataModule",
]
