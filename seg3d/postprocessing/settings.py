"""Which postprocessing a model's predictions get, as stored beside the model.

A run folder may hold ``postprocessing.toml`` (written by ``seg3d tune-crf``)::

    [crf]
    iterations = 5
    smoothness_weight = 3.0
    ...

    [components]
    min_volume_mm3 = 10.0

``seg3d predict --crf`` takes the CRF parameters from there, else the
defaults; the table ``[components]`` is applied whenever present.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from seg3d.config import read_toml
from seg3d.errors import ConfigError
from seg3d.io.atomic import atomic_path
from seg3d.postprocessing.components import ComponentParams
from seg3d.postprocessing.crf_params import CrfParams

POSTPROCESSING_FILE = "postprocessing.toml"


@dataclass(frozen=True)
class Postprocessing:
    """CRF and connected-component settings; ``None`` switches a step off."""

    crf: CrfParams | None = None
    components: ComponentParams | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Postprocessing:
        unknown = sorted(set(data) - {"crf", "components"})
        if unknown:
            raise ConfigError(
                f"unknown table [{unknown[0]}]; postprocessing has [crf] and "
                "[components]"
            )
        crf = CrfParams.from_dict(data["crf"]) if "crf" in data else None
        components = data.get("components")
        return cls(crf, ComponentParams.from_dict(components) if components else None)

    def to_dict(self) -> dict[str, Any]:
        tables: dict[str, Any] = {}
        if self.crf is not None:
            tables["crf"] = self.crf.to_dict()
        if self.components is not None:
            tables["components"] = self.components.to_dict()
        return tables


def read_postprocessing(path: Path) -> Postprocessing:
    """Settings from a TOML file; errors name the file and the key."""
    try:
        return Postprocessing.from_dict(read_toml(path))
    except ConfigError as err:
        message = str(err)
        raise ConfigError(
            message if message.startswith(str(path)) else f"{path}: {message}"
        ) from err


def stored_postprocessing(run_dir: Path) -> Postprocessing:
    """The settings kept in a run folder, or none."""
    path = run_dir / POSTPROCESSING_FILE
    return read_postprocessing(path) if path.is_file() else Postprocessing()


def store_postprocessing(run_dir: Path, settings: Postprocessing) -> Path:
    """Write the settings into a run folder (replacing earlier ones)."""
    path = run_dir / POSTPROCESSING_FILE
    with atomic_path(path, overwrite=True) as temporary:
        temporary.write_text(tomli_w.dumps(settings.to_dict()))
    return path
