"""Fixtures for the sampler tests."""

import numpy as np
import pytest
from sampling_builders import coordinate_image, make_case, position_label

from seg3d.data.case import Case


@pytest.fixture
def coordinate_case() -> Case:
    """Coordinates as channels and ``position_label`` as labels, 24x22x20."""
    shape = (24, 22, 20)
    label_map = position_label(*np.indices(shape)).astype(np.uint8)
    return make_case("coords", coordinate_image(shape), label_map)
