"""Where ``seg3d train`` finds the sample data when no dataset is named."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from seg3d.data.synthetic import write_synthetic_dataset

logger = logging.getLogger(__name__)

SAMPLE_DATA = "sample_data"
_DESCRIPTION = "dataset.json"


def bundled_sample_data() -> Path:
    """The bundled sample dataset, generated on first use where it is missing.

    Looked up in order: ``./sample_data`` (a checkout of seg3d), the
    ``sample_data`` folder beside the installed package (an editable install),
    then a cache folder where the synthetic generator writes the same dataset
    (``$SEG3D_CACHE`` or ``~/.cache/seg3d``), since a wheel does not carry it.
    """
    candidates = [
        Path.cwd() / SAMPLE_DATA,
        Path(__file__).resolve().parents[2] / SAMPLE_DATA,
    ]
    for candidate in candidates:
        if (candidate / _DESCRIPTION).is_file():
            return candidate
    cache = Path(os.environ.get("SEG3D_CACHE", Path.home() / ".cache" / "seg3d"))
    generated = cache / SAMPLE_DATA
    if not (generated / _DESCRIPTION).is_file():
        logger.info("writing the sample dataset to %s", generated)
        write_synthetic_dataset(generated, overwrite=True)
    return generated
