"""The synthetic generator is deterministic, anatomically sane and writes the layout."""

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel import orientations
from scipy import ndimage

from seg3d.data.synthetic import EDEMA, LESION, make_case, write_synthetic_dataset
from seg3d.errors import OutputExistsError

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "sample_data"


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_same_seed_gives_identical_case_and_other_seed_differs():
    first = make_case(7, shape=(18, 16, 14), spacing=(1.0, 1.25, 2.0))
    second = make_case(7, shape=(18, 16, 14), spacing=(1.0, 1.25, 2.0))
    other = make_case(8, shape=(18, 16, 14), spacing=(1.0, 1.25, 2.0))

    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.image, other.image)


def test_arrays_have_the_documented_types_and_values():
    case = make_case(1, shape=(20, 18, 16))

    assert case.image.shape == (2, 20, 18, 16)
    assert case.image.dtype == np.float32
    np.testing.assert_array_equal(case.image, np.rint(case.image))
    assert case.image.min() >= 0
    assert case.label_map.dtype == np.uint8
    assert set(np.unique(case.label_map)) <= {0, LESION, EDEMA}
    assert case.roi_mask.dtype == bool
    # Air around the head is zero in both channels.
    assert (case.image[:, 0, 0, 0] == 0).all()


@pytest.mark.parametrize("seed", [0, 1, 2, 3], ids=lambda s: f"seed{s}")
def test_lesions_lie_inside_the_roi_and_stand_out_in_each_channel(seed):
    case = make_case(seed, shape=(40, 40, 36))
    t1, flair = case.image
    core = case.label_map == LESION
    edema = case.label_map == EDEMA
    tissue = case.roi_mask & (case.label_map == 0)

    assert core.any()
    assert not (case.label_map > 0)[~case.roi_mask].any()
    # Core: dark on T1, bright on FLAIR; edema: bright on FLAIR but not dark on T1.
    assert t1[core].mean() < 0.7 * t1[tissue].mean()
    assert flair[core].mean() > 1.8 * flair[tissue].mean()
    assert flair[edema].mean() > 1.3 * flair[tissue].mean()
    assert t1[edema].mean() > 1.3 * t1[core].mean()


def test_edema_off_gives_a_single_foreground_label():
    case = make_case(4, shape=(24, 24, 24), edema=False, num_lesions=2)

    assert set(np.unique(case.label_map)) == {0, LESION}


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_each_lesion_is_one_blob_and_blobs_may_merge(seed):
    structure = np.ones((3, 3, 3))
    one = make_case(seed, shape=(32, 32, 32), edema=False, num_lesions=1)
    three = make_case(seed, shape=(32, 32, 32), edema=False, num_lesions=3)

    assert ndimage.label(one.label_map == LESION, structure)[1] == 1
    assert 1 <= ndimage.label(three.label_map == LESION, structure)[1] <= 3


def test_anisotropic_spacing_is_in_the_affine_and_scales_the_anatomy():
    spacing = (1.0, 1.5, 2.5)
    shape = (40, 26, 16)
    case = make_case(5, shape=shape, spacing=spacing)

    np.testing.assert_allclose(np.linalg.norm(case.affine[:3, :3], axis=0), spacing)
    # The brain spans 60 to 85 % of the field of view along every axis, in mm,
    # which only holds if the generator builds it in mm, not in voxels.
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        covered = np.flatnonzero(case.roi_mask.any(axis=others))
        fraction = (covered.max() - covered.min() + 1) / shape[axis]
        assert 0.6 <= fraction <= 0.85, (axis, fraction)


@pytest.mark.parametrize("orientation", ["LPS", "PSR", "LAS"], ids=str)
def test_orientation_only_changes_the_storage_order(orientation):
    ras = make_case(3, shape=(20, 18, 16), spacing=(1.0, 1.25, 2.0))
    transform = orientations.ornt_transform(
        orientations.axcodes2ornt("RAS"), orientations.axcodes2ornt(orientation)
    )
    target_shape = [0, 0, 0]
    target_spacing = [0.0, 0.0, 0.0]
    for ras_axis, (axis, _) in enumerate(transform.astype(int)):
        target_shape[axis] = (20, 18, 16)[ras_axis]
        target_spacing[axis] = (1.0, 1.25, 2.0)[ras_axis]
    case = make_case(3, tuple(target_shape), tuple(target_spacing), orientation)

    assert "".join(nib.aff2axcodes(case.affine)) == orientation
    # nibabel, as the peer, brings the stored case back to RAS.
    for stored, expected in [
        (case.image[1], ras.image[1]),
        (case.label_map, ras.label_map),
    ]:
        back = nib.Nifti1Image(stored, case.affine).as_reoriented(
            orientations.io_orientation(case.affine)
        )
        np.testing.assert_array_equal(np.asanyarray(back.dataobj), expected)
        np.testing.assert_allclose(back.affine, ras.affine, atol=1e-9)


def test_dataset_files_hold_exactly_the_generated_cases(tmp_path):
    out = write_synthetic_dataset(tmp_path / "data", 2, 1, seed=4, shape_range=(12, 16))

    description = json.loads((out / "dataset.json").read_text())
    assert description["channel_names"] == {"0": "T1", "1": "FLAIR"}
    assert description["labels"] == {"background": 0, "lesion": 1, "edema": 2}
    assert description["numTraining"] == 2
    assert description["file_ending"] == ".nii.gz"
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == [
        "synth_002_0000.nii.gz",
        "synth_002_0001.nii.gz",
    ]
    for folder in ("labelsTr", "masksTr", "labelsTs", "masksTs"):
        assert len(list((out / folder).iterdir())) == (2 if "Tr" in folder else 1)

    flair = nib.load(out / "imagesTr" / "synth_001_0001.nii.gz")
    label = nib.load(out / "labelsTr" / "synth_001.nii.gz")
    assert flair.get_data_dtype() == np.int16
    assert label.get_data_dtype() == np.uint8
    spacing = np.linalg.norm(flair.affine[:3, :3], axis=0)
    case = make_case(
        (4, 1), flair.shape, tuple(spacing), "".join(nib.aff2axcodes(flair.affine))
    )
    np.testing.assert_array_equal(np.asanyarray(flair.dataobj), case.image[1])
    np.testing.assert_array_equal(np.asanyarray(label.dataobj), case.label_map)
    np.testing.assert_allclose(flair.affine, case.affine, atol=1e-5)


def test_dataset_is_reproducible_byte_for_byte(tmp_path):
    first = write_synthetic_dataset(tmp_path / "a", 2, 1, seed=9, shape_range=(12, 14))
    second = write_synthetic_dataset(tmp_path / "b", 2, 1, seed=9, shape_range=(12, 14))

    assert _digest(first) == _digest(second)


def test_existing_dataset_is_kept_without_overwrite(tmp_path):
    out = write_synthetic_dataset(tmp_path / "data", 2, 0, seed=1, shape_range=(12, 14))
    before = _digest(out)

    with pytest.raises(
        OutputExistsError, match=r"already holds a dataset .* --overwrite"
    ):
        write_synthetic_dataset(out, 3, 0, seed=2, shape_range=(12, 14))
    assert _digest(out) == before


def test_overwrite_replaces_the_dataset_and_removes_stale_cases(tmp_path):
    out = write_synthetic_dataset(tmp_path / "data", 3, 1, seed=1, shape_range=(12, 14))
    (out / "notes.txt").write_text("mine")

    write_synthetic_dataset(out, 1, 0, seed=1, shape_range=(12, 14), overwrite=True)

    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.nii.gz")) == [
        "imagesTr/synth_000_0000.nii.gz",
        "imagesTr/synth_000_0001.nii.gz",
        "labelsTr/synth_000.nii.gz",
        "masksTr/synth_000.nii.gz",
    ]
    assert (out / "notes.txt").read_text() == "mine"


def test_bundled_sample_data_is_what_the_generator_writes(tmp_path):
    # The README promises `seg3d sample-data` rebuilds sample_data/ bit for bit;
    # the first case stands for all (they share the code path).
    out = write_synthetic_dataset(tmp_path / "again", num_training=1, num_test=0)

    for name in ("imagesTr/synth_000_0000.nii.gz", "imagesTr/synth_000_0001.nii.gz",
                 "labelsTr/synth_000.nii.gz", "masksTr/synth_000.nii.gz"):  # fmt: skip
        assert (out / name).read_bytes() == (SAMPLE_DATA / name).read_bytes(), name
