"""`seg3d predict` end to end: outputs on the input grid, and every bad input."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from prediction_builders import OBLIQUE_LPS, write_model, write_scan
from typer.testing import CliRunner

from seg3d.training.run_folder import point_latest_to
from seg3d_cli.main import app

runner = CliRunner()


def _predict(*args):
    return runner.invoke(app, ["predict", *map(str, args)])


@pytest.fixture
def model(tmp_path):
    return write_model(tmp_path / "model.pt")


def test_label_map_lies_on_the_input_grid(tmp_path, model):
    scans = write_scan(tmp_path / "in", "case_a")
    out = tmp_path / "seg.nii.gz"

    result = _predict(*scans, "--model", model, "--out", out, "--save-probabilities")

    assert result.exit_code == 0, result.output
    written, source = nib.load(out), nib.load(scans[0])
    assert written.shape == source.shape
    np.testing.assert_array_equal(written.affine, source.affine)
    assert int(written.header["qform_code"]) == 1
    assert int(written.header["sform_code"]) == 2
    assert written.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 4}

    probabilities = nib.load(tmp_path / "seg_probabilities.nii.gz")
    values = np.asarray(probabilities.dataobj)
    assert probabilities.get_data_dtype() == np.float32
    assert values.shape == (*source.shape, 2)
    np.testing.assert_allclose(values.sum(-1), 1.0, atol=1e-5)
    labels = np.where(values.argmax(-1) == 1, 4, 0)
    np.testing.assert_array_equal(labels, np.asarray(written.dataobj))

    sidecar = json.loads((tmp_path / "seg.json").read_text())
    assert sidecar["labels"] == {"background": 0, "tumour": 4}


def test_outside_the_mask_is_background(tmp_path, model):
    scans = write_scan(tmp_path / "in", "case_a")
    mask = np.zeros((20, 18, 16), np.uint8)
    mask[5:15, 4:14, 3:12] = 1
    nib.save(nib.Nifti1Image(mask, OBLIQUE_LPS), tmp_path / "mask.nii.gz")
    out = tmp_path / "seg.nii.gz"

    result = _predict(
        *scans,
        "--model",
        model,
        "--mask",
        tmp_path / "mask.nii.gz",
        "--out",
        out,
        "--save-probabilities",
    )

    assert result.exit_code == 0, result.output
    probabilities = np.asarray(nib.load(tmp_path / "seg_probabilities.nii.gz").dataobj)
    assert np.all(probabilities[mask == 0, 0] == 1.0)


def test_folder_gives_one_output_per_case_and_uses_latest_run(tmp_path, monkeypatch):
    run = tmp_path / "runs" / "run1"
    write_model(run / "best.pt")
    point_latest_to(run)
    write_scan(tmp_path / "imagesTs", "case_a", seed=1)
    write_scan(tmp_path / "imagesTs", "case_b", seed=2)
    monkeypatch.chdir(tmp_path)

    result = _predict("imagesTs", "--out", "preds")

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "preds").glob("*.nii.gz")) == [
        "case_a_seg.nii.gz",
        "case_b_seg.nii.gz",
    ]
    assert "case_a" in result.stdout


def test_resampling_model_writes_on_the_original_grid(tmp_path):
    model = write_model(tmp_path / "model.pt", target_spacing=[2.0, 2.0, 2.5])
    scans = write_scan(tmp_path / "in", "case_a")

    result = _predict(*scans, "--model", model, "--out", tmp_path / "seg.nii.gz")

    assert result.exit_code == 0, result.output
    written = nib.load(tmp_path / "seg.nii.gz")
    assert written.shape == (20, 18, 16)
    np.testing.assert_array_equal(written.affine, nib.load(scans[0]).affine)


def test_ensemble_and_tta_average_probabilities(tmp_path):
    first = write_model(tmp_path / "a.pt", seed=1)
    second = write_model(tmp_path / "b.pt", seed=2)
    scans = write_scan(tmp_path / "in", "case_a")

    def probabilities(name, *options):
        result = _predict(
            *scans, *options, "--out", tmp_path / name, "--save-probabilities"
        )
        assert result.exit_code == 0, result.output
        stem = name.removesuffix(".nii.gz")
        return np.asarray(nib.load(tmp_path / f"{stem}_probabilities.nii.gz").dataobj)

    single_a = probabilities("a.nii.gz", "--model", first)
    single_b = probabilities("b.nii.gz", "--model", second)
    both = probabilities("ab.nii.gz", "--model", first, "--model", second)
    np.testing.assert_allclose(both, (single_a + single_b) / 2, atol=1e-5)

    with_tta = probabilities("tta.nii.gz", "--model", first, "--tta")
    assert not np.allclose(with_tta, single_a)
    np.testing.assert_allclose(with_tta.sum(-1), 1.0, atol=1e-5)


def test_existing_output_is_kept(tmp_path, model):
    scans = write_scan(tmp_path / "in", "case_a")
    out = tmp_path / "seg.nii.gz"
    out.write_bytes(b"precious")

    result = _predict(*scans, "--model", model, "--out", out)

    assert result.exit_code == 1
    assert "seg.nii.gz exists; pass --overwrite" in result.output
    assert out.read_bytes() == b"precious"
    assert (
        _predict(*scans, "--model", model, "--out", out, "--overwrite").exit_code == 0
    )


@pytest.mark.parametrize("channels", [1, 3], ids=["fewer", "more"])
def test_channel_count_differs_from_model(tmp_path, model, channels):
    scans = write_scan(tmp_path / "in", "case_a", channels=channels)
    result = _predict(*scans, "--model", model, "--out", tmp_path / "seg.nii.gz")
    assert result.exit_code == 1
    assert "error:" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "seg.nii.gz").exists()


def test_corrupt_and_incompatible_models(tmp_path, model):
    scans = write_scan(tmp_path / "in", "case_a")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(model.read_bytes()[:1000])
    result = _predict(*scans, "--model", corrupt)
    assert result.exit_code == 1
    assert "corrupt.pt: not a readable model file" in result.output

    payload = torch.load(model, weights_only=True)
    payload["format"] = 99
    torch.save(payload, tmp_path / "future.pt")
    result = _predict(*scans, "--model", tmp_path / "future.pt")
    assert result.exit_code == 1
    assert "checkpoint format 99" in result.output


def test_ensemble_members_must_share_labels(tmp_path, model):
    other = write_model(tmp_path / "other.pt", labels={"background": 0, "lesion": 1})
    scans = write_scan(tmp_path / "in", "case_a")
    result = _predict(*scans, "--model", model, "--model", other)
    assert result.exit_code == 1
    assert "other.pt predicts labels" in result.output


def test_unreadable_scan_and_missing_model(tmp_path, model):
    bad = tmp_path / "bad_0000.nii.gz"
    bad.write_bytes(b"not a nifti")
    other = write_scan(tmp_path / "in", "bad")[1]
    result = _predict(bad, other, "--model", model, "--out", tmp_path / "s.nii.gz")
    assert result.exit_code == 1
    assert "bad_0000.nii.gz" in result.output
    assert not (tmp_path / "s.nii.gz").exists()

    result = _predict(other, "--model", tmp_path / "nope.pt")
    assert result.exit_code == 1
    assert "nope.pt: no such model file" in result.output


def test_run_postprocessing_is_used_and_crf_changes_probabilities(tmp_path):
    from scipy import ndimage

    from seg3d.postprocessing.components import ComponentParams
    from seg3d.postprocessing.crf_params import CrfParams
    from seg3d.postprocessing.settings import Postprocessing, store_postprocessing

    run = tmp_path / "run"
    model = write_model(run / "best.pt")
    store_postprocessing(
        run, Postprocessing(CrfParams(iterations=2), ComponentParams(keep_largest=True))
    )
    scans = write_scan(tmp_path / "in", "case_a")

    def predict(name, *options):
        out = tmp_path / name
        result = _predict(
            *scans, "--model", run, "--out", out, "--save-probabilities", *options
        )
        assert result.exit_code == 0, result.output
        stem = name.removesuffix(".nii.gz")
        probabilities = nib.load(tmp_path / f"{stem}_probabilities.nii.gz")
        return np.asarray(nib.load(out).dataobj), np.asarray(probabilities.dataobj)

    plain_labels, plain = predict("plain.nii.gz")
    crf_labels, refined = predict("crf.nii.gz", "--crf")

    assert model.parent == run
    assert not np.allclose(plain, refined)
    np.testing.assert_allclose(refined.sum(-1), 1.0, atol=1e-4)
    for labels in (plain_labels, crf_labels):
        _, count = ndimage.label(labels == 4, np.ones((3, 3, 3)))
        assert count <= 1
