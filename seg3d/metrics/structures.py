"""What is evaluated: single label values (classes) and sets of them (regions).

A *structure* is one binary mask cut from a label map: a class is the voxels
holding one label value, a region the voxels holding any of several values
(BraTS-style nested labels: whole tumour = 1, 2, 3; core = 1, 3; enhancing = 3).
Names come from ``--labels``, ``--region`` and the dataset.json beside the
ground truth (Decathlon ``{"1": "edema"}`` or nnU-Net v2 ``{"edema": 1}``, whose
list values such as ``"whole tumour": [1, 2, 3]`` become regions).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from seg3d.errors import ConfigError, DatasetError

logger = logging.getLogger(__name__)

CLASS = "class"
REGION = "region"


@dataclass(frozen=True)
class Structure:
    """One binary mask to evaluate.

    Attributes:
        name: shown in tables and used as the key in JSON and CSV.
        label_values: the label values whose voxels form the mask, sorted.
        kind: ``"class"`` for one label value, ``"region"`` for a set given by
            ``--region`` or dataset.json.
    """

    name: str
    label_values: tuple[int, ...]
    kind: str = CLASS

    def __post_init__(self) -> None:
        if not self.label_values:
            raise ValueError(f"structure {self.name!r} has no label values")
        if any(value <= 0 for value in self.label_values):
            raise ValueError(
                f"structure {self.name!r}: label values must be positive (0 is "
                f"background), not {self.label_values}"
            )


def default_class_name(value: int) -> str:
    return f"label {value}"


def parse_labels(options: Sequence[str]) -> dict[int, str]:
    """Parse ``--labels`` options: comma-separated ``VALUE`` or ``VALUE=NAME``.

    Returns:
        Label value to name; values given without a name get ``"label N"``.

    Raises:
        ConfigError: an item is not a positive integer, optionally with a name.
    """
    labels: dict[int, str] = {}
    for option in options:
        for item in filter(None, (part.strip() for part in option.split(","))):
            text, _, name = item.partition("=")
            value = _positive_int(text, f"--labels {option!r}")
            labels[value] = name.strip() or default_class_name(value)
    return labels


def parse_region(option: str) -> Structure:
    """Parse one ``--region NAME=1,2,3`` option.

    Raises:
        ConfigError: no name, no ``=``, or values that are not positive integers.
    """
    name, separator, values_text = option.partition("=")
    if not separator or not name.strip():
        raise ConfigError(
            f"--region {option!r}: expected NAME=VALUES such as 'whole tumour=1,2,3'"
        )
    values = [
        _positive_int(text, f"--region {option!r}")
        for text in values_text.split(",")
        if text.strip()
    ]
    if not values:
        raise ConfigError(f"--region {option!r}: no label values after '='")
    return Structure(name.strip(), tuple(sorted(set(values))), REGION)


def _positive_int(text: str, where: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigError(
            f"{where}: {text.strip()!r} is not an integer label value"
        ) from None
    if value <= 0:
        raise ConfigError(
            f"{where}: label values must be positive (0 is background), not {value}"
        )
    return value


def find_dataset_json(truth: Path) -> Path | None:
    """The dataset.json beside the ground truth, or one folder up.

    For a folder ``labelsTs`` this finds ``labelsTs/dataset.json`` or
    ``labelsTs/../dataset.json``; for a file, the same starting from its folder.
    """
    folder = truth if truth.is_dir() else truth.parent
    for candidate in (folder / "dataset.json", folder.parent / "dataset.json"):
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class DatasetLabels:
    """Label names and regions read from a dataset.json.

    Attributes:
        names: label value to name, background excluded.
        regions: regions declared as lists of values (nnU-Net v2 style).
        source: the file they were read from.
    """

    names: dict[int, str]
    regions: tuple[Structure, ...]
    source: Path


def read_dataset_labels(path: Path) -> DatasetLabels:
    """Read the ``labels`` entry of a Decathlon or nnU-Net v2 dataset.json.

    Raises:
        DatasetError: the file is not JSON, or its ``labels`` are malformed.
    """
    try:
        labels = json.loads(path.read_text(encoding="utf-8")).get("labels", {})
    except (OSError, ValueError, AttributeError) as err:
        raise DatasetError(
            f"{path}: not a readable dataset.json ({err}); fix or remove it"
        ) from err
    if not isinstance(labels, Mapping):
        raise DatasetError(f"{path}: 'labels' must be a mapping, not {labels!r}")
    names: dict[int, str] = {}
    regions: list[Structure] = []
    for key, entry in labels.items():
        if str(key).strip().lstrip("-").isdigit():
            value, name = int(key), str(entry)  # Decathlon: {"1": "edema"}
        elif isinstance(entry, int) and not isinstance(entry, bool):
            value, name = entry, str(key)  # nnU-Net v2: {"edema": 1}
        elif _is_int_list(entry):
            values = tuple(sorted(set(entry)))
            if 0 not in values:
                regions.append(Structure(str(key), values, REGION))
            continue
        else:
            raise DatasetError(
                f"{path}: label {key!r}: {entry!r} is neither a name nor a value"
            )
        if value > 0:
            names[value] = name
    return DatasetLabels(names, tuple(regions), path)


def _is_int_list(entry: object) -> bool:
    return (
        isinstance(entry, list)
        and bool(entry)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in entry)
    )


def class_structures(
    values: Iterable[int], names: Mapping[int, str]
) -> list[Structure]:
    """One class per label value, named from ``names`` where known."""
    return [
        Structure(names.get(value, default_class_name(value)), (value,), CLASS)
        for value in sorted(set(values))
        if value > 0
    ]


def check_unique_names(structures: Sequence[Structure]) -> None:
    """Raise :class:`ConfigError` if two structures share a name."""
    seen: dict[str, Structure] = {}
    for structure in structures:
        other = seen.setdefault(structure.name, structure)
        if other is not structure:
            raise ConfigError(
                f"two structures are named {structure.name!r} (label values "
                f"{other.label_values} and {structure.label_values}); give one "
                "another name with --labels VALUE=NAME or --region NAME=VALUES"
            )
