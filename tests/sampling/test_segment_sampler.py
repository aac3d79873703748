"""The batch stream is fixed by the seed: across workers, runs and resumes."""

import numpy as np
import pytest
import torch
from sampling_builders import make_case, tiny_geometry

from seg3d.errors import ConfigError, DatasetError
from seg3d.sampling import SegmentSampler

SHAPE = (18, 16, 14)


def _case(case_id="a", seed=0, channels=2):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(channels, *SHAPE)).astype(np.float32)
    label_map = np.zeros(SHAPE, dtype=np.uint8)
    label_map[6:10, 5:9, 4:8] = 1
    return make_case(case_id, image, label_map)


def _sampler(cases=None, seed=5, rank=0, batches=6, **options):
    return SegmentSampler(
        cases if cases is not None else [_case("a"), _case("b", seed=1)],
        tiny_geometry(factors=(1, 3)),
        (0, 1),
        batch_size=3,
        batches_per_epoch=batches,
        seed=seed,
        rank=rank,
        **options,
    )


def _key(batch):
    """Everything random in a batch, as comparable arrays."""
    return [s.numpy() for s in batch["segments"]] + [
        batch["target"].numpy(),
        batch["centre"].numpy(),
        batch["case_index"].numpy(),
    ]


def _assert_same(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert (a["epoch"], a["batch_index"]) == (b["epoch"], b["batch_index"])
        for x, y in zip(_key(a), _key(b), strict=True):
            np.testing.assert_array_equal(x, y)


def _differs(first, second):
    return any(
        not np.array_equal(x, y)
        for a, b in zip(first, second, strict=True)
        for x, y in zip(_key(a), _key(b), strict=True)
    )


def test_batch_layout():
    sampler = _sampler()
    batch = next(iter(sampler))
    normal, context = batch["segments"]
    assert normal.shape == (3, 2, 17, 17, 17)
    assert context.shape == (3, 2, 11, 11, 11)
    assert normal.dtype == context.dtype == torch.float32
    assert batch["target"].shape == (3, 9, 9, 9)
    assert batch["target"].dtype == torch.int64
    assert batch["centre"].shape == (3, 3)
    assert (batch["epoch"], batch["batch_index"]) == (0, 0)
    assert len(sampler) == 6


def test_same_seed_same_stream_other_seed_or_rank_another():
    first = list(_sampler(seed=5))
    _assert_same(first, list(_sampler(seed=5)))
    assert _differs(first, list(_sampler(seed=6)))
    assert _differs(first, list(_sampler(seed=5, rank=1)))


def test_two_workers_give_the_stream_of_zero_workers():
    sampler = _sampler(batches=5)
    in_process = list(sampler.data_loader(num_workers=0))
    with_workers = list(sampler.data_loader(num_workers=2))
    _assert_same(in_process, with_workers)
    assert [b["batch_index"] for b in with_workers] == [0, 1, 2, 3, 4]


def test_epochs_differ_and_advance_when_batches_are_consumed():
    sampler = _sampler(batches=3)
    loader = sampler.data_loader()
    epochs = []
    for _ in range(2):
        batches = []
        for batch in loader:
            batches.append(batch)
            sampler.mark_consumed(batch)
        epochs.append(batches)
    assert [b["epoch"] for b in epochs[1]] == [1, 1, 1]
    assert _differs(epochs[0], epochs[1])
    assert sampler.state_dict()["epoch"] == 2


def test_restored_state_continues_the_identical_stream():
    straight = _sampler(batches=4)
    loader = straight.data_loader()
    stream = []
    saved = None
    for _ in range(3):  # epochs
        for batch in loader:
            stream.append(batch)
            straight.mark_consumed(batch)
            if len(stream) == 6:  # mid-epoch: epoch 1, after batch 1
                saved = straight.state_dict()

    resumed = _sampler(seed=999, batches=4)  # the state brings back the seed
    resumed.load_state_dict(saved)
    assert len(resumed) == 2
    rest = []
    loader = resumed.data_loader(num_workers=2)
    while len(rest) < len(stream) - 6:
        for batch in loader:
            rest.append(batch)
            resumed.mark_consumed(batch)
    _assert_same(stream[6:], rest)


def test_one_ranks_state_resumes_every_rank_on_its_own_stream():
    rank_0, rank_1 = _sampler(rank=0), _sampler(rank=1)
    for sampler in (rank_0, rank_1):
        sampler.mark_consumed(sampler.batch(0, 2))
    resumed = _sampler(rank=1, seed=0)
    resumed.load_state_dict(rank_0.state_dict())
    _assert_same(list(resumed), list(rank_1))


def test_memory_mapped_images_give_the_same_batches(tmp_path):
    cases = [_case("a"), _case("b", seed=1)]
    mapped = []
    for case in cases:
        path = tmp_path / f"{case.case_id}.npy"
        np.save(path, case.image)
        mapped.append(
            make_case(case.case_id, np.load(path, mmap_mode="r"), case.label_map)
        )
    _assert_same(list(_sampler(cases)), list(_sampler(mapped)))


def test_no_cases_is_a_dataset_error():
    with pytest.raises(
        DatasetError, match=r"no cases to sample training segments from"
    ):
        _sampler(cases=[])


def test_channel_count_mismatch_names_both_cases():
    cases = [_case("a"), _case("b", channels=3)]
    with pytest.raises(DatasetError, match=r"b: 3 channels, but a has 2") as caught:
        _sampler(cases)
    assert len(caught.value.problems) == 1


def test_unlabelled_case_is_rejected():
    case = _case("a")
    case.label_map = None
    with pytest.raises(DatasetError, match=r"a: no label map; training needs one"):
        _sampler([case])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"seed": -1}, r"seed must be an integer >= 0, not -1"),
        ({"batches": 0}, r"batches_per_epoch must be an integer >= 1, not 0"),
    ],
    ids=["seed", "batches"],
)
def test_bad_settings_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        _sampler(**options)


def test_persistent_workers_are_refused():
    with pytest.raises(ConfigError, match=r"persistent_workers is not supported"):
        _sampler().data_loader(num_workers=1, persistent_workers=True)
