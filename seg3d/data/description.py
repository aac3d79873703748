"""What a dataset is made of: its channels, its labels and its cases' files.

:class:`Dataset` is the frozen description that both layouts (Decathlon folder,
CSV case list) produce; the helpers here read the parts of ``dataset.json``
that both layouts share.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from seg3d.data.case import CaseFiles
from seg3d.errors import ConfigError, DatasetError

DESCRIPTION_FILE = "dataset.json"


@dataclass(frozen=True)
class Dataset:
    """A dataset's description: channels, labels and the files of every case.

    Attributes:
        root: the folder that relative paths are resolved against (the
            Decathlon folder, or the folder of the CSV file).
        source: ``dataset.json`` or the CSV file the description came from.
        layout: ``"decathlon"`` or ``"csv"``.
        channel_names: one name per channel, in channel order.
        label_names: one name per label value, in the order of
            :attr:`label_values`.
        label_values: the declared integer label values, ascending; the
            first is 0 (background).
        training: the labelled cases to train on.
        test: the cases to predict; a test case's label, when present, is the
            ground truth for evaluation.
        problems: problems found while listing files, one line each, naming
            the file or row; voxel-level problems are found by
            :func:`seg3d.data.validation.validate_dataset`.
    """

    root: Path
    source: Path
    layout: str
    channel_names: tuple[str, ...]
    label_names: tuple[str, ...]
    label_values: tuple[int, ...]
    training: tuple[CaseFiles, ...]
    test: tuple[CaseFiles, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def labels(self) -> dict[str, int]:
        """Label name to value, background included."""
        return dict(zip(self.label_names, self.label_values, strict=True))

    @property
    def cases(self) -> tuple[CaseFiles, ...]:
        """Training cases, then test cases."""
        return self.training + self.test

    def __repr__(self) -> str:
        return (
            f"Dataset({str(self.source)!r}, layout={self.layout}, "
            f"channels={list(self.channel_names)}, labels={self.labels}, "
            f"training={len(self.training)}, test={len(self.test)}, "
            f"problems={len(self.problems)})"
        )


def parse_label_mapping(text: str) -> dict[str, int]:
    """Parse ``"background=0,lesion=1"`` into ``{"background": 0, "lesion": 1}``.

    Raises:
        ConfigError: an item is not ``name=value`` with a non-negative integer.
    """
    mapping: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, separator, value = item.partition("=")
        if not separator or not name.strip() or not value.strip().isdigit():
            raise ConfigError(
                f"labels must look like 'background=0,lesion=1', not {text!r} "
                f"(at {item!r})"
            )
        mapping[name.strip()] = int(value)
    if not mapping:
        raise ConfigError("labels must look like 'background=0,lesion=1', not ''")
    return mapping


def read_description(path: Path) -> dict:
    """The parsed ``dataset.json``.

    Raises:
        DatasetError: the file is unreadable, not JSON or not a JSON object.
    """
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DatasetError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno}); fix the file"
        ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: cannot be read ({err})") from err
    if not isinstance(description, dict):
        raise DatasetError(
            f"{path}: must hold a JSON object with channel_names and labels"
        )
    return description


def channel_names_of(
    description: dict, source: Path, fatal: list[str]
) -> tuple[str, ...]:
    """Channel names in channel order; problems are appended to ``fatal``."""
    # nnU-Net v2 says channel_names; the Decathlon and nnU-Net v1 say modality.
    names = description.get("channel_names", description.get("modality"))
    if not isinstance(names, dict) or not names:
        fatal.append(
            f"{source}: needs channel_names (or modality), e.g. "
            '{"0": "T1", "1": "FLAIR"}'
        )
        return ()
    if sorted(str(key) for key in names) != sorted(str(n) for n in range(len(names))):
        fatal.append(
            f"{source}: channel_names keys must be 0, 1, ... (one per channel), "
            f"not {list(names)}"
        )
        return ()
    return tuple(str(names[str(n)]) for n in range(len(names)))


def labels_of(
    declared: object, source: Path | str, fatal: list[str]
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Label names and values, ascending by value; problems go to ``fatal``.

    Args:
        declared: ``{"background": 0, "lesion": 1}`` (nnU-Net v2) or
            ``{"0": "background", "1": "lesion"}`` (Decathlon).
        source: where the declaration came from, for messages.
        fatal: list the problems are appended to.
    """
    if not isinstance(declared, Mapping) or not declared:
        fatal.append(f'{source}: needs labels, e.g. {{"background": 0, "lesion": 1}}')
        return (), ()
    name_to_value = _name_to_value(declared, source, fatal)
    if name_to_value is None:
        return (), ()
    values = sorted(name_to_value.values())
    if len(set(values)) != len(values):
        fatal.append(f"{source}: label values must be unique, not {name_to_value}")
    if 0 not in values:
        fatal.append(
            f"{source}: labels must declare background as 0, not {name_to_value}"
        )
    if any(not 0 <= value <= 65535 for value in values):
        fatal.append(f"{source}: label values must lie in 0..65535, not {values}")
    ordered = sorted(name_to_value.items(), key=lambda item: item[1])
    return tuple(name for name, _ in ordered), tuple(value for _, value in ordered)


def _name_to_value(
    declared: Mapping, source: Path | str, fatal: list[str]
) -> dict[str, int] | None:
    """Accept nnU-Net v2's name -> value and the Decathlon's value -> name."""
    values = list(declared.values())
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return {str(name): int(value) for name, value in declared.items()}
    if all(str(k).isdigit() and isinstance(v, str) for k, v in declared.items()):
        return {name: int(value) for value, name in declared.items()}
    if any(isinstance(v, list | tuple) for v in values):
        fatal.append(
            f"{source}: region-based labels (lists of values, as nnU-Net v2 "
            "allows) are not supported; declare one value per label"
        )
        return None
    fatal.append(
        f'{source}: labels must map names to values ({{"lesion": 1}}) or values '
        f'to names ({{"1": "lesion"}}), not {dict(declared)}'
    )
    return None


def resolve_labels(
    description_labels: object,
    override: Mapping[str, int] | None,
    source: Path | str,
    fatal: list[str],
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Labels from ``override`` when given, else from the description."""
    if override is not None:
        return labels_of(dict(override), "the labels option", fatal)
    return labels_of(description_labels, source, fatal)
