"""One case: its channels, optional label map and ROI mask, on one grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seg3d.io.volume import Affine, Spacing, SpatialShape, Volume


@dataclass(frozen=True)
class CaseFiles:
    """Where a case's files are.

    Attributes:
        case_id: the case's identifier (file stem without the channel suffix).
        channels: one file per channel, or a single 4D file holding them all.
        label: the label map, if the case is labelled.
        roi_mask: a region of interest (e.g. a brain mask), if given.
    """

    case_id: str
    channels: tuple[Path, ...]
    label: Path | None = None
    roi_mask: Path | None = None


@dataclass(eq=False)
class Case:
    """A case in memory, in the axis order of its files (not yet reoriented).

    Attributes:
        case_id: identifier used in file names and reports.
        image: ``(C, I, J, K)`` float32 intensities, one channel per modality.
        reference: the first channel's volume (affine and header); outputs
            written for this case take its grid.
        label_map: ``(I, J, K)`` integer label values as stored in the file
            (0 = background), or ``None`` for unlabelled cases.
        roi_mask: ``(I, J, K)`` bool, or ``None`` when no mask was given.
        files: the files the case was read from.
    """

    case_id: str
    image: np.ndarray
    reference: Volume
    label_map: np.ndarray | None = None
    roi_mask: np.ndarray | None = None
    files: CaseFiles | None = field(default=None, repr=False)

    @property
    def affine(self) -> Affine:
        return self.reference.affine

    @property
    def spacing(self) -> Spacing:
        return self.reference.spacing

    @property
    def spatial_shape(self) -> SpatialShape:
        i, j, k = self.image.shape[1:]
        return int(i), int(j), int(k)

    @property
    def num_channels(self) -> int:
        return int(self.image.shape[0])

    def __repr__(self) -> str:
        spacing = ", ".join(f"{s:.3g}" for s in self.spacing)
        return (
            f"Case({self.case_id!r}, channels={self.num_channels}, "
            f"shape={self.spatial_shape}, spacing=({spacing}) mm, "
            f"orientation={self.reference.orientation}, "
            f"labelled={self.label_map is not None}, "
            f"roi={self.roi_mask is not None})"
        )


def case_source(case: Case) -> Path | None:
    """The first channel file, for messages."""
    return case.files.channels[0] if case.files and case.files.channels else None
