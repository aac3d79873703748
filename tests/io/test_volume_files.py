"""Reading and writing volumes keeps voxels and grids exact; bad files fail clearly."""

import gzip

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from seg3d.errors import OutputExistsError, Seg3dError, VolumeReadError
from seg3d.io import label_dtype, read_volume, write_volume

OBLIQUE_LPS = np.array(
    [
        [-0.93, 0.12, 0.0, 90.0],
        [-0.1, -0.95, 0.3, 120.0],
        [0.0, 0.25, 2.9, -60.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def _save(
    path, array, affine=OBLIQUE_LPS, qform_code=1, sform_code=2, cls=nib.Nifti1Image
):
    image = cls(array, affine)
    image.set_qform(affine, qform_code)
    image.set_sform(affine, sform_code)
    nib.save(image, path)
    return path


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64], ids=str)
@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"], ids=["gz", "plain"])
def test_nifti_round_trip_keeps_voxels_and_grid(tmp_path, dtype, suffix):
    array = (np.random.default_rng(0).random((6, 5, 4)) * 100).astype(dtype)
    source = _save(tmp_path / f"scan{suffix}", array)

    volume = read_volume(source)
    out = write_volume(tmp_path / f"out{suffix}", volume.array, volume)

    written = nib.load(out)
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), array)
    assert written.get_data_dtype() == np.dtype(dtype)
    np.testing.assert_allclose(written.affine, OBLIQUE_LPS, atol=1e-6)
    assert int(written.header["qform_code"]) == 1
    assert int(written.header["sform_code"]) == 2


def test_label_map_written_for_a_scan_takes_its_exact_grid(tmp_path):
    scan = _save(tmp_path / "scan.nii.gz", np.zeros((6, 5, 4), np.float32))
    volume = read_volume(scan)
    labels = np.zeros(volume.spatial_shape, dtype=label_dtype(3))
    labels[2:4, 1:3, 1] = 3

    out = write_volume(tmp_path / "seg.nii.gz", labels, volume)

    original, written = nib.load(scan), nib.load(out)
    assert written.shape == original.shape
    np.testing.assert_array_equal(written.affine, original.affine)
    for field in ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "srow_x"):
        np.testing.assert_array_equal(written.header[field], original.header[field])
    assert written.get_data_dtype() == np.uint8
    assert label_dtype(300) == np.uint16


def test_intensity_scaling_is_applied_on_read(tmp_path):
    image = nib.Nifti1Image(np.array([[[1, 2], [3, 4]]] * 2, dtype=np.int16), np.eye(4))
    image.header.set_slope_inter(2.5, -10.0)
    nib.save(image, tmp_path / "scaled.nii.gz")

    volume = read_volume(tmp_path / "scaled.nii.gz")

    np.testing.assert_allclose(volume.array[0, 0], [2.5 - 10.0, 5.0 - 10.0])


def test_probabilities_are_written_4d_float32_and_unscaled(tmp_path):
    scan = _save(tmp_path / "scan.nii.gz", np.zeros((4, 4, 3), np.int16))
    volume = read_volume(scan)
    probabilities = np.random.default_rng(1).random((4, 4, 3, 3)).astype(np.float32)

    out = write_volume(tmp_path / "probs.nii.gz", probabilities, volume)

    written = nib.load(out)
    assert written.shape == (4, 4, 3, 3)
    assert written.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), probabilities)


def test_nifti2_and_4d_inputs(tmp_path):
    array = np.random.default_rng(2).random((5, 4, 3, 2)).astype(np.float32)
    path = _save(tmp_path / "two.nii", array, cls=nib.Nifti2Image)

    volume = read_volume(path)
    assert volume.num_channels == 2
    np.testing.assert_array_equal(volume.channel(1), array[..., 1])

    out = write_volume(tmp_path / "copy.nii", volume.array, volume)
    assert isinstance(nib.load(out), nib.Nifti2Image)


def test_trailing_singleton_axis_reads_as_3d(tmp_path):
    path = _save(tmp_path / "single.nii.gz", np.ones((4, 3, 2, 1), np.float32))
    assert read_volume(path).array.shape == (4, 3, 2)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"], ids=["nrrd", "mha"])
def test_simpleitk_formats_share_nibabel_world_frame(tmp_path, suffix):
    array = np.random.default_rng(3).integers(0, 9, (6, 5, 4)).astype(np.int16)
    nifti = read_volume(_save(tmp_path / "scan.nii.gz", array))

    other = read_volume(write_volume(tmp_path / f"scan{suffix}", array, nifti))

    np.testing.assert_array_equal(other.array, array)
    np.testing.assert_allclose(other.affine, nifti.affine, atol=1e-5)
    # SimpleITK itself must place voxel (1, 2, 3) where nibabel does.
    image = sitk.ReadImage(str(tmp_path / f"scan{suffix}"))
    lps = np.array(image.TransformIndexToPhysicalPoint((1, 2, 3)))
    ras = nifti.affine @ np.array([1, 2, 3, 1.0])
    np.testing.assert_allclose(lps * [-1, -1, 1], ras[:3], atol=1e-5)


def test_missing_file(tmp_path):
    with pytest.raises(VolumeReadError, match=r"missing\.nii\.gz: no such file"):
        read_volume(tmp_path / "missing.nii.gz")


def test_unknown_suffix(tmp_path):
    path = tmp_path / "scan.png"
    path.write_bytes(b"x")
    with pytest.raises(VolumeReadError, match=r"scan\.png: unknown volume type"):
        read_volume(path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.nii.gz"
    path.write_bytes(b"this is not a nifti file at all" * 20)
    with pytest.raises(
        VolumeReadError, match=r"corrupt\.nii\.gz: not a readable NIfTI"
    ):
        read_volume(path)


def test_truncated_gzip(tmp_path):
    array = np.random.default_rng(4).random((20, 20, 20)).astype(np.float32)
    path = _save(tmp_path / "full.nii.gz", array)
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    with pytest.raises(VolumeReadError, match=r"truncated\.nii\.gz: .*truncated"):
        read_volume(truncated)


def test_absurd_declared_size(tmp_path):
    path = _save(tmp_path / "small.nii", np.zeros((4, 4, 4), np.float32))
    header_only = nib.load(path).header.copy()
    header_only.set_data_shape((30000, 30000, 30000))
    absurd = tmp_path / "absurd.nii.gz"
    with gzip.open(absurd, "wb") as stream:
        stream.write(header_only.binaryblock + b"\0" * 4 + b"\0" * 64)

    with pytest.raises(
        VolumeReadError, match=r"absurd\.nii\.gz: the header declares shape"
    ):
        read_volume(absurd)


def test_2d_image(tmp_path):
    nib.save(
        nib.Nifti1Image(np.zeros((8, 8), np.float32), np.eye(4)), tmp_path / "flat.nii"
    )
    with pytest.raises(VolumeReadError, match=r"flat\.nii: the image is 2D"):
        read_volume(tmp_path / "flat.nii")


def test_existing_output_is_kept_without_overwrite(tmp_path):
    volume = read_volume(_save(tmp_path / "scan.nii.gz", np.zeros((3, 3, 3), np.uint8)))
    target = tmp_path / "seg.nii.gz"
    target.write_bytes(b"precious")

    with pytest.raises(
        OutputExistsError, match=r"seg\.nii\.gz exists; pass --overwrite"
    ):
        write_volume(target, np.ones((3, 3, 3), np.uint8), volume)

    assert target.read_bytes() == b"precious"
    write_volume(target, np.ones((3, 3, 3), np.uint8), volume, overwrite=True)
    assert nib.load(target).get_fdata().min() == 1


def test_failed_write_leaves_nothing(tmp_path):
    volume = read_volume(_save(tmp_path / "scan.nii.gz", np.zeros((3, 3, 3), np.uint8)))
    with pytest.raises(Seg3dError, match=r"cannot write '\.mhd' files"):
        write_volume(tmp_path / "seg.mhd", np.zeros((3, 3, 3), np.uint8), volume)
    with pytest.raises(nib.spatialimages.HeaderDataError):
        write_volume(tmp_path / "bad.nii.gz", np.zeros((3, 3, 3), dtype=object), volume)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.nii.gz"]
