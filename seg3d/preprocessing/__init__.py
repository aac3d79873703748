"""Reorientation, resampling, normalisation and cropping, with their exact inverse.

:func:`preprocess_case` takes a case from its files' grid to the processed grid
and returns a :class:`PreprocessingRecord`; :func:`restore_label_map` and
:func:`restore_probabilities` bring predictions back onto the input's grid.
Nothing here imports torch.
"""

from seg3d.preprocessing.config import ChannelNormalization, PreprocessingConfig
from seg3d.preprocessing.inverse import restore_label_map, restore_probabilities
from seg3d.preprocessing.preprocess import (
    PreprocessedCase,
    apply_record,
    preprocess_case,
)
from seg3d.preprocessing.record import ChannelStatistics, PreprocessingRecord

__all__ = [
    "ChannelNormalization",
    "ChannelStatistics",
    "PreprocessedCase",
    "PreprocessingConfig",
    "PreprocessingRecord",
    "apply_record",
    "preprocess_case",
    "restore_label_map",
    "restore_probabilities",
]
