"""QC pictures: the right spots, readable PNGs, no overwriting."""

import io

import numpy as np
import pytest
from matplotlib import image as mpimg
from metrics_builders import affine_for, save

from seg3d.errors import OutputExistsError
from seg3d.io import Volume
from seg3d.metrics import plan_evaluation, run_evaluation
from seg3d.metrics.pictures import (
    SUMMARY_NAME,
    _scene,
    _spots,
    case_mosaic,
    write_pictures,
)
from seg3d.metrics.structures import class_structures

SHAPE = (40, 36, 16)


def _label_maps():
    truth = np.zeros(SHAPE, np.uint8)
    truth[5:15, 5:15, 4:10] = 1  # the large lesion
    truth[8:12, 8:12, 6:8] = 2
    truth[28:31, 25:28, 5:7] = 1  # a small one
    prediction = truth.copy()
    prediction[20:24, 2:6, 10:14] = 1  # an invented lesion
    return truth, prediction


def _image(affine=None):
    intensities = np.random.default_rng(0).normal(100, 10, SHAPE).astype(np.float32)
    return Volume(intensities, affine if affine is not None else affine_for())


def _decode(png: bytes) -> np.ndarray:
    return mpimg.imread(io.BytesIO(png), format="png")


def test_spots_are_the_largest_lesions_then_the_largest_error():
    truth, prediction = _label_maps()

    spots = _spots(_scene(_image(), truth, prediction))

    assert [spot.title.split(":")[0] for spot in spots] == [
        "lesion 1",
        "lesion 2",
        "lesion 3",
        "largest error",
    ]
    # The largest lesion is cut through its widest slices: inside the box.
    assert all(5 <= c < 15 for c in spots[0].centre[:2])
    # The invented lesion is the only disagreement.
    assert spots[3].box == (slice(20, 24), slice(2, 6), slice(10, 14))


def test_spots_follow_the_orientation_of_the_file():
    truth, prediction = _label_maps()
    flipped = np.diag([-0.7, 1.3, 2.9, 1.0])  # L instead of R along i

    spots = _spots(_scene(_image(flipped), truth, prediction))

    # In RAS order the i axis is reversed: the lesion at i 5..14 moves to 25..34.
    assert spots[0].box[0] == slice(SHAPE[0] - 15, SHAPE[0] - 5)


def test_empty_label_maps_give_one_central_spot():
    empty = np.zeros(SHAPE, np.uint8)

    spots = _spots(_scene(_image(), empty, empty))

    assert [spot.title for spot in spots] == ["no structure in truth or prediction"]


def test_case_mosaic_is_a_png_with_one_row_per_spot():
    truth, prediction = _label_maps()
    classes = class_structures([1, 2], {1: "edema", 2: "core"})
    png = case_mosaic(_image(), truth, prediction, classes, {}, "case-1")
    one_row = case_mosaic(
        _image(),
        np.zeros(SHAPE, np.uint8),
        np.zeros(SHAPE, np.uint8),
        classes,
        {},
        "empty",
    )

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    tall, short = _decode(png), _decode(one_row)
    assert tall.shape[1] == short.shape[1] == 1000
    assert tall.shape[0] > 3 * short.shape[0]


@pytest.fixture
def evaluated(tmp_path):
    truth, prediction = _label_maps()
    for name in ("a", "b"):
        save(tmp_path / "gt" / f"{name}.nii.gz", truth)
        save(tmp_path / "pred" / f"{name}_seg.nii.gz", prediction)
        save(tmp_path / "img" / f"{name}_0000.nii.gz", _image().array)
    plan = plan_evaluation(
        tmp_path / "pred", tmp_path / "gt", images=[tmp_path / "img"]
    )
    return run_evaluation(plan, pictures=True)


def test_pictures_are_written_per_case_with_a_summary(evaluated, tmp_path):
    paths = write_pictures(evaluated, tmp_path / "qc")

    assert [path.name for path in paths] == ["a.png", "b.png", SUMMARY_NAME]
    summary = _decode(paths[-1].read_bytes())
    assert summary.shape[0] == 480


def test_existing_pictures_stop_the_writing_before_it_starts(evaluated, tmp_path):
    (tmp_path / "qc").mkdir()
    (tmp_path / "qc" / "b.png").write_bytes(b"keep")

    with pytest.raises(OutputExistsError, match=r"b.png exists"):
        write_pictures(evaluated, tmp_path / "qc")

    assert sorted(p.name for p in (tmp_path / "qc").iterdir()) == ["b.png"]
