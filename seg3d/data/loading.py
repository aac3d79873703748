"""Reading one case: every file once, every problem named with its file.

:func:`inspect_case` is the single reader behind both :func:`load_case` and
dataset validation, so that a dataset is checked by the same code that loads it
and no file is read twice.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seg3d.data.case import Case, CaseFiles
from seg3d.errors import DatasetError, GeometryMismatchError, VolumeReadError
from seg3d.io import (
    Spacing,
    SpatialShape,
    Volume,
    check_same_grid,
    label_dtype,
    read_volume,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseSummary:
    """What one case holds, for reports; ``None`` where a file could not be read.

    Attributes:
        case_id: the case's identifier.
        num_channels: channels found in its image files.
        spatial_shape: ``(I, J, K)`` of the first channel.
        spacing: voxel size in mm along i, j, k of the first channel.
        orientation: axis codes of the first channel, e.g. ``"LPS"``.
        label_counts: voxels per label value found in the label map, or
            ``None`` when the case has no (readable) label map.
        roi_voxels: non-zero voxels of the ROI mask, or ``None`` without one.
        problems: what makes the case unusable, one line each naming the file.
        warnings: what is odd but usable (e.g. no foreground voxels).
    """

    case_id: str
    num_channels: int = 0
    spatial_shape: SpatialShape | None = None
    spacing: Spacing | None = None
    orientation: str | None = None
    label_counts: dict[int, int] | None = None
    roi_voxels: int | None = None
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaseInspection:
    """The summary of a case and, when it has no problem and was kept, the case."""

    summary: CaseSummary
    case: Case | None


def load_case(
    files: CaseFiles,
    channel_names: Sequence[str] | None = None,
    label_values: Collection[int] | None = None,
) -> Case:
    """Read a case's channels, label map and ROI mask, each file once.

    Args:
        files: the case's files; one file per channel, or one 4D file with
            the channels on its last axis.
        channel_names: the channels expected, in order; their number is
            checked when given.
        label_values: the declared label values; other values in the label
            map are an error when given.

    Returns:
        The case: image ``(C, I, J, K)`` float32, label map ``(I, J, K)``
        uint8/uint16, ROI mask ``(I, J, K)`` bool, in the files' axis order.

    Raises:
        DatasetError: any file is missing, unreadable, not 3D (or 4D for a
            single-file case), off the first channel's grid, holds NaN or
            infinite voxels or undeclared labels, or the ROI mask is empty;
            ``problems`` lists them all.
    """
    inspection = inspect_case(files, channel_names, label_values, keep=True)
    problems = inspection.summary.problems
    if problems or inspection.case is None:
        raise DatasetError(
            f"case '{files.case_id}' cannot be loaded: {len(problems)} problem(s), "
            "listed below",
            list(problems),
        )
    return inspection.case


def inspect_case(
    files: CaseFiles,
    channel_names: Sequence[str] | None = None,
    label_values: Collection[int] | None = None,
    keep: bool = True,
) -> CaseInspection:
    """Read and check every file of a case once, collecting all problems.

    Args:
        files: the case's files.
        channel_names: the channels expected, in order, or ``None``.
        label_values: the declared label values, or ``None``.
        keep: return the loaded case (when it has no problem); otherwise the
            voxels are dropped after checking.
    """
    reader = _CaseReader(files, channel_names, label_values)
    channels, reference = reader.channels()
    label_map, label_counts = reader.label_map(reference)
    roi_mask = reader.roi_mask(reference, label_map)
    summary = CaseSummary(
        case_id=files.case_id,
        num_channels=len(channels),
        spatial_shape=reference.spatial_shape if reference else None,
        spacing=reference.spacing if reference else None,
        orientation=reference.orientation if reference else None,
        label_counts=label_counts,
        roi_voxels=None if roi_mask is None else int(roi_mask.sum()),
        problems=tuple(reader.problems),
        warnings=tuple(reader.warnings),
    )
    case = None
    if keep and reference is not None and not reader.problems:
        image = np.stack(channels).astype(np.float32, copy=False)  # (C, I, J, K)
        case = Case(files.case_id, image, reference, label_map, roi_mask, files)
    return CaseInspection(summary, case)


class _CaseReader:
    """Reads a case's files in turn, appending problems instead of raising."""

    def __init__(
        self,
        files: CaseFiles,
        channel_names: Sequence[str] | None,
        label_values: Collection[int] | None,
    ) -> None:
        self.files = files
        self.channel_names = tuple(channel_names) if channel_names else None
        self.label_values = None if label_values is None else sorted(label_values)
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def channels(self) -> tuple[list[np.ndarray], Volume | None]:
        """The ``(I, J, K)`` channel arrays and the first channel's volume."""
        if len(self.files.channels) == 1:
            return self._single_file_channels(self.files.channels[0])
        arrays: list[np.ndarray] = []
        reference = None
        for index, path in enumerate(self.files.channels):
            volume = self._read(path, self._channel_role(index))
            if volume is None or not self._is_3d(volume, "channel file"):
                continue
            self._check_finite(volume)
            if reference is None:
                reference = volume
            elif not self._on_grid(reference, volume, "channel"):
                continue
            arrays.append(volume.array)
        return arrays, reference

    def _single_file_channels(
        self, path: Path
    ) -> tuple[list[np.ndarray], Volume | None]:
        volume = self._read(path, self._channel_role(None))
        if volume is None:
            return [], None
        expected = (
            len(self.channel_names) if self.channel_names else volume.num_channels
        )
        if volume.num_channels != expected:
            self.problems.append(
                f"{path}: holds {volume.num_channels} channel(s) but the dataset "
                f"declares {expected} ({', '.join(self.channel_names or ())}); "
                "store one file per channel (<case>_0000, <case>_0001, ...) or "
                "one 4D file with all channels on its last axis"
            )
        self._check_finite(volume)
        arrays = [volume.channel(c) for c in range(volume.num_channels)]
        # The reference is 3D so that outputs written on its grid are 3D.
        return arrays, volume.with_array(arrays[0])

    def label_map(
        self, reference: Volume | None
    ) -> tuple[np.ndarray | None, dict[int, int] | None]:
        """The label map as uint8/uint16 and its voxel count per value."""
        path = self.files.label
        volume = self._read(path, "label map") if path is not None else None
        if volume is None or not self._is_3d(volume, "label map"):
            return None, None
        finite = self._check_finite(volume)
        if reference is not None:
            self._on_grid(reference, volume, "label map")
        values, counts = np.unique(volume.array, return_counts=True)
        if not finite or not self._whole_numbers(path, values):
            return None, None
        label_counts = {int(v): int(c) for v, c in zip(values, counts, strict=True)}
        if not self._declared(path, list(label_counts)):
            return None, label_counts
        if set(label_counts) <= {0}:
            self.warnings.append(f"{path}: no foreground voxels (only background)")
        return volume.array.astype(label_dtype(int(values.max()))), label_counts

    def _whole_numbers(self, path: Path, values: np.ndarray) -> bool:
        fractional = [float(v) for v in values if not float(v).is_integer()]
        if fractional:
            self.problems.append(
                f"{path}: the label map holds non-integer values such as "
                f"{fractional[0]:g}; label maps must hold whole label values"
            )
        return not fractional

    def _declared(self, path: Path, found: list[int]) -> bool:
        if self.label_values is None:
            undeclared = [v for v in found if not 0 <= v <= 65535]
            declared = "0..65535"
        else:
            undeclared = [v for v in found if v not in self.label_values]
            declared = ", ".join(str(v) for v in self.label_values)
        if undeclared:
            self.problems.append(
                f"{path}: label values {undeclared} are not declared (declared: "
                f"{declared}); declare them in the dataset's labels or fix the "
                "label map"
            )
        return not undeclared

    def roi_mask(
        self, reference: Volume | None, label_map: np.ndarray | None
    ) -> np.ndarray | None:
        """The ROI mask as bool (non-zero voxels), or ``None`` without one."""
        path = self.files.roi_mask
        volume = self._read(path, "ROI mask") if path is not None else None
        if volume is None or not self._is_3d(volume, "ROI mask"):
            return None
        self._check_finite(volume)
        if reference is not None and not self._on_grid(reference, volume, "ROI mask"):
            return None
        roi_mask = volume.array != 0
        if not roi_mask.any():
            self.problems.append(
                f"{path}: the ROI mask is empty (no non-zero voxel); fix the mask "
                "or leave it out"
            )
        elif label_map is not None and label_map.shape == roi_mask.shape:
            outside = int(np.count_nonzero(label_map[~roi_mask]))
            if outside:
                self.warnings.append(
                    f"{self.files.label}: {outside} foreground voxel(s) lie outside "
                    f"the ROI mask {path}; they are never sampled"
                )
        return roi_mask

    def _channel_role(self, index: int | None) -> str:
        if index is None:
            return "image file"
        name = self.channel_names[index] if self.channel_names else None
        return f"channel {index} ({name})" if name else f"channel {index}"

    def _read(self, path: Path, role: str) -> Volume | None:
        if not path.exists():
            self.problems.append(
                f"{path}: missing {role} of case '{self.files.case_id}'; add the "
                "file or fix its name"
            )
            return None
        try:
            return read_volume(path)
        except VolumeReadError as err:
            self.problems.append(str(err))
            return None

    def _is_3d(self, volume: Volume, role: str) -> bool:
        if volume.array.ndim == 3:
            return True
        self.problems.append(
            f"{volume.source}: the {role} is 4D with shape {volume.array.shape}; "
            "it must be a 3D volume"
        )
        return False

    def _check_finite(self, volume: Volume) -> bool:
        if not np.issubdtype(volume.array.dtype, np.floating):
            return True  # integer voxels cannot be NaN or infinite
        not_finite = int(np.count_nonzero(~np.isfinite(volume.array)))
        if not_finite:
            nan = int(np.count_nonzero(np.isnan(volume.array)))
            self.problems.append(
                f"{volume.source}: {nan} NaN and {not_finite - nan} infinite "
                "voxel(s); replace them (e.g. with 0) and save the file again"
            )
        return not not_finite

    def _on_grid(self, reference: Volume, volume: Volume, role: str) -> bool:
        try:
            check_same_grid(
                reference, volume, f"resample the {role} onto the first channel's grid"
            )
        except GeometryMismatchError as err:
            self.problems.append(str(err))
            return False
        return True
