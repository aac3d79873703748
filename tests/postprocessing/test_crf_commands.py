"""`seg3d crf` and `seg3d tune-crf` from the command line."""

import copy

import nibabel as nib
import numpy as np
import pytest
from crf_builders import noisy_case
from typer.testing import CliRunner

from seg3d.postprocessing.settings import POSTPROCESSING_FILE, stored_postprocessing
from seg3d.training.config import TrainingConfig
from seg3d.training.trainer import train
from seg3d_cli.main import app

runner = CliRunner()


def _run_crf(folder, probabilities_name, out):
    images = [f"--image={folder / f'img_{c:04d}.nii.gz'}" for c in range(2)]
    return runner.invoke(
        app,
        [
            "crf",
            *images,
            f"--prob={folder / probabilities_name}",
            f"--out={out}",
            "--device=cpu",
        ],
    )


def _dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.fixture
def written_case(tmp_path):
    probabilities, image, label_map, spacing = noisy_case(seed=3)
    affine = np.diag([*spacing, 1.0])
    # Raw intensities: the command z-scores them, as predict does.
    for c, channel in enumerate(image):
        raw = (channel * 40 + 300).astype(np.float32)
        nib.save(nib.Nifti1Image(raw, affine), tmp_path / f"img_{c:04d}.nii.gz")
    nib.save(
        nib.Nifti1Image(np.moveaxis(probabilities, 0, -1), affine),
        tmp_path / "prob.nii.gz",
    )
    return tmp_path, probabilities, label_map


def test_crf_command_improves_on_argmax(written_case):
    folder, probabilities, label_map = written_case
    out = folder / "seg.nii.gz"

    result = _run_crf(folder, "prob.nii.gz", out)

    assert result.exit_code == 0, result.output
    refined = np.asarray(nib.load(out).dataobj)
    plain = probabilities.argmax(0)
    for label in (1, 2):
        assert _dice(refined == label, label_map == label) > _dice(
            plain == label, label_map == label
        )


def test_crf_command_rejects_scores_that_are_not_probabilities(written_case):
    folder, probabilities, _ = written_case
    scores = np.moveaxis(probabilities * 3, 0, -1)
    nib.save(
        nib.Nifti1Image(scores, nib.load(folder / "prob.nii.gz").affine),
        folder / "scores.nii.gz",
    )

    result = _run_crf(folder, "scores.nii.gz", folder / "seg.nii.gz")

    assert result.exit_code == 1
    assert "scores.nii.gz: the values do not sum to 1" in result.output
    assert not (folder / "seg.nii.gz").exists()


@pytest.mark.slow
def test_tune_crf_stores_parameters_in_the_run(tmp_path):
    from training_phantoms import TINY_TRAINING, write_phantom_dataset

    data = write_phantom_dataset(tmp_path / "data", num_cases=4)
    values = copy.deepcopy(TINY_TRAINING)
    values["training"].update(epochs=1, batches_per_epoch=2)
    train(data, TrainingConfig.from_dict(values), tmp_path / "run")

    result = runner.invoke(app, ["tune-crf", str(tmp_path / "run"), "--trials", "3"])

    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / POSTPROCESSING_FILE).is_file()
    stored = stored_postprocessing(tmp_path / "run")
    assert stored.crf is not None
    assert "with the best CRF parameters" in result.stdout
