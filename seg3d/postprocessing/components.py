"""Connected-component clean-up of a label map, per class, sizes in mm^3.

Read from a TOML table such as::

    [components]
    min_volume_mm3 = 50.0        # one for every class, or {"1" = 50.0, "2" = 10.0}
    keep_largest = false         # true for every class, or the label values [1, 2]
    connectivity = 3             # 1: faces, 2: faces and edges, 3: also corners

Components are found by :func:`scipy.ndimage.label` on each class's mask
separately, so a structure made of two touching classes is two components.
Removed voxels become background (0); nothing is relabelled to a neighbouring
class.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from seg3d import config
from seg3d.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComponentParams:
    """Which connected components of each class to remove.

    Attributes:
        min_volume_mm3: components smaller than this are removed; one number
            for every class, or a table from label value (as a string, as TOML
            keys are) to volume; classes not in the table are left alone.
            0 removes nothing.
        keep_largest: keep only the largest component of each class (``True``)
            or of the listed label values. Of equally large components the one
            met first in C order of the array is kept.
        connectivity: which neighbours touch: 1 shares a face (6-connected),
            2 also an edge (18), 3 also a corner (26).
    """

    min_volume_mm3: float | dict[str, float] = 0.0
    keep_largest: bool | tuple[int, ...] = False
    connectivity: int = 3

    def __post_init__(self) -> None:
        if self.connectivity not in (1, 2, 3):
            raise ConfigError(
                f"connectivity must be 1 (faces), 2 (edges) or 3 (corners), "
                f"not {self.connectivity!r}"
            )
        volumes = self.min_volume_mm3
        if isinstance(volumes, dict):
            volumes = {str(_label_value(k)): _volume(v) for k, v in volumes.items()}
        else:
            volumes = _volume(volumes)
        object.__setattr__(self, "min_volume_mm3", volumes)
        if not isinstance(self.keep_largest, bool):
            values = tuple(_label_value(v) for v in self.keep_largest)
            object.__setattr__(self, "keep_largest", values)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], section: str = "components"
    ) -> ComponentParams:
        """Parameters from a plain table (e.g. TOML's ``[components]``)."""
        return config.from_dict(cls, data, section)

    def to_dict(self) -> dict[str, Any]:
        """Plain TOML/JSON-able values; :meth:`from_dict` reads them back."""
        return config.to_dict(self)

    def min_volume_for(self, value: int) -> float:
        """The minimum component volume in mm^3 for label value ``value``."""
        if isinstance(self.min_volume_mm3, dict):
            return self.min_volume_mm3.get(str(value), 0.0)
        return self.min_volume_mm3

    def keeps_largest_of(self, value: int) -> bool:
        if isinstance(self.keep_largest, bool):
            return self.keep_largest
        return value in self.keep_largest


def filter_components(
    label_map: np.ndarray, spacing: Sequence[float], params: ComponentParams
) -> tuple[np.ndarray, dict[int, int]]:
    """Remove small components, or all but the largest, of each class.

    A class whose largest component is below its minimum volume disappears.

    Args:
        label_map: ``(I, J, K)`` integer label values, 0 = background.
        spacing: voxel size in mm along i, j, k.
        params: what to remove.

    Returns:
        The new label map (same shape and dtype; removed voxels are 0) and,
        per label value present, how many components were removed.
    """
    if label_map.ndim != 3:
        raise ValueError(f"label_map must be (I, J, K), not {label_map.shape}")
    voxel_mm3 = float(np.prod(spacing))
    structure = ndimage.generate_binary_structure(3, params.connectivity)
    result = label_map.copy()
    removed_counts = {}
    for value in np.unique(label_map):
        if value == 0:
            continue
        value = int(value)
        components, count = ndimage.label(label_map == value, structure)
        remove = _components_to_remove(components, count, voxel_mm3, value, params)
        result[remove[components]] = 0
        removed_counts[value] = int(remove.sum())
        if removed_counts[value]:
            logger.info(
                "label %d: removed %d of %d connected components (%d voxels)",
                value,
                removed_counts[value],
                count,
                int(remove[components].sum()),
            )
    return result, removed_counts


def _components_to_remove(
    components: np.ndarray,
    count: int,
    voxel_mm3: float,
    value: int,
    params: ComponentParams,
) -> np.ndarray:
    """``(count + 1,)`` bool: which component numbers go (0, background, never)."""
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    remove = sizes * voxel_mm3 < params.min_volume_for(value)
    if params.keeps_largest_of(value) and count > 1:
        largest = 1 + int(np.argmax(sizes[1:]))
        remove |= np.arange(count + 1) != largest
    remove[0] = False
    return remove


def _volume(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"min_volume_mm3 must be a number >= 0, not {value!r}")
    return float(value)


def _label_value(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number <= 0 or str(number) != str(value).strip():
        raise ConfigError(
            f"label values must be positive integers (0 is background), not {value!r}"
        )
    return number
