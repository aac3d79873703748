"""Training segments: class-balanced centres, two-scale extraction, augmentation.

The border convention shared with inference lives in :mod:`.padding`; where
each pathway reads comes from :mod:`seg3d.model.geometry`.
"""

from seg3d.sampling.augmentation import IntensityTransform, draw_augmentation
from seg3d.sampling.centres import Category, CentrePool, categories, class_index_map
from seg3d.sampling.config import AugmentationConfig, SamplingConfig
from seg3d.sampling.extraction import (
    IDENTITY,
    SpatialTransform,
    extract_segments,
    extract_segments_into,
    extract_target,
    is_square_in_plane,
)
from seg3d.sampling.padding import (
    LABEL_PAD_VALUE,
    PAD_VALUE,
    context_margins,
    pad_for_geometry,
)
from seg3d.sampling.sampler import Batch, SegmentSampler

__all__ = [
    "IDENTITY",
    "LABEL_PAD_VALUE",
    "PAD_VALUE",
    "AugmentationConfig",
    "Batch",
    "Category",
    "CentrePool",
    "IntensityTransform",
    "SamplingConfig",
    "SegmentSampler",
    "SpatialTransform",
    "categories",
    "class_index_map",
    "context_margins",
    "draw_augmentation",
    "extract_segments",
    "extract_segments_into",
    "extract_target",
    "is_square_in_plane",
    "pad_for_geometry",
]
