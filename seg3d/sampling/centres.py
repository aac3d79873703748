"""Class-balanced choice of segment centres inside the ROI.

The candidate centres of every category (background, foreground, or one
foreground label) are listed once per case with :func:`numpy.flatnonzero`, so
drawing a centre is two integer draws, never a rejection loop. A batch gets
its categories in fixed proportions (stratified: ``share * batch_size``
rounded, the remainder drawn by share), then each centre picks a case uniformly
among the cases that have voxels of its category, then a voxel uniformly.

Memory: the lists hold int32 flat indices (int64 for volumes over 2**31
voxels); the background list holds about one index per ROI voxel, i.e. about as
much as one float32 channel of the image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seg3d.errors import ConfigError, DatasetError
from seg3d.sampling.config import SamplingConfig

logger = logging.getLogger(__name__)

_MAX_LISTED_CASES = 5


@dataclass(frozen=True)
class Category:
    """A kind of centre and its share of each batch.

    Attributes:
        name: ``"background"``, ``"foreground"`` or ``"label <value>"``.
        classes: the class indices (not label values) it covers.
        share: its share of the centres, in [0, 1].
    """

    name: str
    classes: tuple[int, ...]
    share: float


def class_index_map(
    label_map: np.ndarray, label_values: Sequence[int], case_id: str = ""
) -> np.ndarray:
    """Turn label values into class indices ``0 .. len(label_values) - 1``.

    Args:
        label_map: ``(I, J, K)`` integer label values as stored in the files.
        label_values: the dataset's label values in class order, background
            (0) first, e.g. ``(0, 1, 2, 4)`` for BraTS.
        case_id: for the error message.

    Returns:
        ``(I, J, K)`` uint8 class indices (uint16 beyond 256 classes).

    Raises:
        DatasetError: if the label map holds a value not in ``label_values``.
    """
    values = np.asarray(label_values, dtype=np.int64)
    dtype = np.uint8 if len(values) <= 256 else np.uint16
    if label_map.dtype.kind in "ui" and label_map.dtype.itemsize <= 2:
        # A lookup table over the dtype's whole range maps in one linear pass.
        low = int(np.iinfo(label_map.dtype).min)
        table = np.full(int(np.iinfo(label_map.dtype).max) - low + 1, -1, np.int64)
        inside = (values >= low) & (values - low < table.size)
        table[values[inside] - low] = np.flatnonzero(inside)
        classes = table[label_map.astype(np.int64) - low]  # (I, J, K)
    else:
        order = np.argsort(values)
        position = np.searchsorted(values[order], label_map)  # (I, J, K)
        np.minimum(position, len(values) - 1, out=position)
        classes = np.where(values[order][position] == label_map, order[position], -1)
    unknown = classes < 0
    if unknown.any():
        raise DatasetError(
            f"case {case_id!r}: label map holds values "
            f"{np.unique(label_map[unknown]).tolist()} that are not among the "
            f"dataset's labels {values.tolist()}; fix the label file or declare "
            "the label"
        )
    return classes.astype(dtype)


def categories(config: SamplingConfig, label_values: Sequence[int]) -> list[Category]:
    """The centre categories a config asks for, background last.

    Args:
        config: class balance settings.
        label_values: the dataset's label values in class order, 0 first.

    Raises:
        ConfigError: if ``class_shares`` names a label the dataset lacks.
    """
    values = [int(v) for v in label_values]
    if not values or values[0] != 0:
        raise ConfigError(f"label values must start with background 0, not {values}")
    if config.class_shares is None:
        foreground = tuple(range(1, len(values)))
        share = config.foreground_share if foreground else 0.0
        found = [Category("foreground", foreground, share)]
    else:
        missing = sorted(set(config.class_shares) - set(values))
        if missing:
            raise ConfigError(
                f"sampling.class_shares names label values {missing} that the "
                f"dataset does not have; its labels are {values}"
            )
        found = [
            Category(f"label {label}", (values.index(label),), share)
            for label, share in sorted(config.class_shares.items())
        ]
    rest = 1.0 - sum(c.share for c in found)
    return [*found, Category("background", (0,), max(0.0, rest))]


class CentrePool:
    """Candidate centres of every category in every case.

    Args:
        class_maps: per case, ``(I, J, K)`` class indices.
        roi_masks: per case, ``(I, J, K)`` bool ROI or ``None`` for the whole
            volume.
        categories: the categories and their shares (see :func:`categories`).
        case_ids: per case, its identifier, for messages.

    Raises:
        DatasetError: if no category with a positive share has any voxel.
    """

    def __init__(
        self,
        class_maps: Sequence[np.ndarray],
        roi_masks: Sequence[np.ndarray | None],
        categories: Sequence[Category],
        case_ids: Sequence[str],
    ) -> None:
        self.shapes = [m.shape for m in class_maps]
        self.candidates = [
            [
                _candidates(m, r, c.classes)
                for m, r in zip(class_maps, roi_masks, strict=True)
            ]
            for c in categories
        ]  # [category][case] -> flat voxel indices
        self.categories = _fall_back(list(categories), self.candidates, case_ids)
        self._eligible = [
            np.array([n for n, idx in enumerate(lists) if idx.size], dtype=np.int64)
            for lists in self.candidates
        ]

    def draw(
        self, rng: np.random.Generator, count: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw ``count`` centres in the categories' proportions, shuffled.

        Returns:
            ``(count,)`` int64 case indices, ``(count, 3)`` int64 centre voxels
            (i, j, k) and ``(count,)`` int64 category indices.
        """
        per_category = _stratified_counts(
            rng, [c.share for c in self.categories], count
        )
        category = np.repeat(np.arange(len(per_category)), per_category)
        category = category[rng.permutation(count)]
        cases = np.empty(count, dtype=np.int64)
        centres = np.empty((count, 3), dtype=np.int64)
        for n, which in enumerate(category):
            eligible = self._eligible[which]
            case = int(eligible[rng.integers(eligible.size)])
            indices = self.candidates[which][case]
            flat = indices[rng.integers(indices.size)]
            cases[n] = case
            centres[n] = np.unravel_index(flat, self.shapes[case])
        return cases, centres, category


def _candidates(
    class_map: np.ndarray, roi_mask: np.ndarray | None, classes: tuple[int, ...]
) -> np.ndarray:
    if len(classes) == 1:
        inside = class_map == classes[0]
    else:
        inside = np.isin(class_map, classes)
    if roi_mask is not None:
        inside &= roi_mask.astype(bool, copy=False)
    dtype = np.int32 if class_map.size < 2**31 else np.int64
    return np.flatnonzero(inside).astype(dtype)


def _fall_back(
    found: list[Category], candidates: list[list[np.ndarray]], case_ids: Sequence[str]
) -> list[Category]:
    """Warn about missing categories; give an absent category's share away."""
    present = [any(idx.size for idx in lists) for lists in candidates]
    shares = []
    for category, lists, here in zip(found, candidates, present, strict=True):
        if category.share > 0 and here:
            _warn_lacking_cases(category, lists, case_ids)
        if category.share > 0 and not here:
            heir = "the other categories" if category is found[-1] else "background"
            logger.warning(
                "no case has a %s voxel inside the ROI; its share %.3g of the "
                "centres goes to %s",
                category.name, category.share, heir,
            )  # fmt: skip
        shares.append(category.share if here else 0.0)

    # Background is last and takes whatever the foreground categories leave; if
    # it is absent itself, the others are scaled up to fill the batch.
    if present[-1]:
        shares[-1] = max(0.0, 1.0 - sum(shares[:-1]))
    total = sum(shares)
    if total <= 0:
        raise DatasetError(
            "no case has a voxel inside its ROI to centre a segment on; check the "
            "ROI masks"
        )
    return [
        Category(c.name, c.classes, s / total)
        for c, s in zip(found, shares, strict=True)
    ]


def _warn_lacking_cases(
    category: Category, lists: list[np.ndarray], case_ids: Sequence[str]
) -> None:
    lacking = [case_ids[n] for n, idx in enumerate(lists) if idx.size == 0]
    if not lacking:
        return
    listed = ", ".join(lacking[:_MAX_LISTED_CASES])
    more = ", ..." if len(lacking) > _MAX_LISTED_CASES else ""
    logger.warning(
        "%d of %d cases have no %s voxel inside the ROI and give no %s centres: "
        "%s%s",
        len(lacking), len(lists), category.name, category.name, listed, more,
    )  # fmt: skip


def _stratified_counts(
    rng: np.random.Generator, shares: Sequence[float], count: int
) -> np.ndarray:
    """Split ``count`` into per-category counts whose expectation is share * count.

    Each category gets ``floor(share * count)``, and the remaining centres go
    to categories by systematic sampling over the leftover fractions, which
    gives each category an extra centre with probability exactly its fraction.
    """
    exact = np.asarray(shares, dtype=np.float64) * count
    counts = np.floor(exact + 1e-9).astype(np.int64)
    remainder = count - int(counts.sum())
    if remainder > 0:
        cumulative = np.cumsum(np.clip(exact - counts, 0.0, None))
        cumulative *= remainder / cumulative[-1]
        points = rng.random() + np.arange(remainder)
        chosen = np.searchsorted(cumulative, points, side="right")
        np.add.at(counts, np.minimum(chosen, len(counts) - 1), 1)
    return counts
