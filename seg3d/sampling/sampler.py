"""Batches of training samples as a torch ``IterableDataset``.

Randomness: batch ``b`` of epoch ``e`` is drawn from its own generator,
seeded by ``SeedSequence(seed, spawn_key=(rank, e, b))``. The stream of
batches therefore depends only on the seed and the rank, not on how many
DataLoader workers draw it or in which process (worker ``w`` of ``N`` draws
batches ``w, w + N, ...`` and the DataLoader hands them out in order), and the
sampler's whole random state is the position ``(epoch, next batch)``. This
replaces per-worker seeds: resuming from :meth:`SegmentSampler.state_dict`
continues the identical stream with any number of workers.

Memory: volumes are held once, in the sampler. DataLoader workers started by
``fork`` (the default on Linux) share them copy-on-write; under ``spawn``
(macOS, Windows) each worker receives a copy. Images given as ``np.memmap``
(e.g. ``np.load(path, mmap_mode="r")`` of a preprocessed ``.npy`` cache) are
read lazily, segment by segment, and are not copied when workers fork; the
sampler itself writes no cache.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from seg3d.data.case import Case
from seg3d.errors import ConfigError, DatasetError
from seg3d.model.geometry import SegmentGeometry
from seg3d.sampling.augmentation import draw_augmentation
from seg3d.sampling.centres import CentrePool, categories, class_index_map
from seg3d.sampling.config import SamplingConfig
from seg3d.sampling.extraction import (
    extract_segments_into,
    extract_target,
    is_square_in_plane,
)

Batch = dict[str, Any]
"""One batch; see :meth:`SegmentSampler.batch` for its keys."""


class SegmentSampler(IterableDataset):
    """Class-balanced, augmented training batches for the multi-scale network.

    Use it through :meth:`data_loader` and report each batch as consumed once
    its optimisation step is done; then :meth:`state_dict` is always the exact
    point to resume from::

        loader = sampler.data_loader(num_workers=2)
        for epoch in range(epochs):
            for batch in loader:
                train_step(batch["segments"], batch["target"])
                sampler.mark_consumed(batch)

    Marking the last batch of an epoch moves the sampler to the next epoch. A
    loop that never marks batches (nor calls :meth:`set_epoch`) gets the same
    epoch again each time it iterates.

    Args:
        cases: labelled cases, preprocessed: ``image`` ``(C, I, J, K)`` float32
            normalised (0 = mean, as padding assumes), ``label_map`` label
            values, ``roi_mask`` optional. Held by reference, not copied.
        geometry: segment sizes and offsets, from :mod:`seg3d.model.geometry`.
        label_values: the dataset's label values in class order, 0 first; the
            target holds indices into it.
        batch_size: samples per batch.
        batches_per_epoch: batches an epoch has.
        config: class balance and augmentation.
        seed: base seed of the whole stream (non-negative).
        rank: distributed rank; each rank draws its own stream.

    Raises:
        DatasetError: no cases, an unlabelled case, channel counts or grids
            that differ, unknown label values, or no voxel to centre on.
        ConfigError: a setting that does not fit the data or the geometry.
    """

    def __init__(
        self,
        cases: Sequence[Case],
        geometry: SegmentGeometry,
        label_values: Sequence[int],
        *,
        batch_size: int,
        batches_per_epoch: int,
        config: SamplingConfig | None = None,
        seed: int = 0,
        rank: int = 0,
    ) -> None:
        super().__init__()
        self.config = config if config is not None else SamplingConfig()
        _check_settings(
            geometry, self.config, batch_size, batches_per_epoch, seed, rank
        )
        _check_cases(cases)
        self.geometry = geometry
        self.batch_size = batch_size
        self.batches_per_epoch = batches_per_epoch
        self.seed = seed
        self.rank = rank
        self.case_ids = [case.case_id for case in cases]
        self.images = [case.image for case in cases]
        self.class_maps = [
            class_index_map(case.label_map, label_values, case.case_id)
            for case in cases
        ]
        # Per-case channel ranges make gamma one fixed map of the whole volume.
        self.low = [image.min(axis=(1, 2, 3)) for image in self.images]
        self.high = [image.max(axis=(1, 2, 3)) for image in self.images]
        self.pool = CentrePool(
            self.class_maps,
            [case.roi_mask for case in cases],
            categories(self.config, label_values),
            self.case_ids,
        )
        self.epoch = 0
        self.next_batch = 0

    def __len__(self) -> int:
        """Batches the next iteration yields (the rest of the current epoch)."""
        return self.batches_per_epoch - self.next_batch

    def __iter__(self) -> Iterator[Batch]:
        indices = range(self.next_batch, self.batches_per_epoch)
        worker = get_worker_info()
        if worker is not None:
            indices = indices[worker.id :: worker.num_workers]
        for index in indices:
            yield self.batch(self.epoch, index)

    def batch(self, epoch: int, index: int) -> Batch:
        """Draw batch ``index`` of ``epoch``: always the same for the same seed.

        Returns:
            A dict: ``"segments"``, one float32 tensor ``(B, C, *input_shape)``
            per pathway in ``geometry.pathways`` order (normal first, the
            subsampled ones already strided); ``"target"``, int64 ``(B,
            *output_shape)`` class indices, ``LABEL_PAD_VALUE`` beyond the
            volume; ``"case_index"`` ``(B,)`` and ``"centre"`` ``(B, 3)`` int64,
            the case and the centre voxel (i, j, k) in that case's unaugmented
            volume; ``"category"`` ``(B,)`` int64, index into
            ``self.pool.categories``; ``"epoch"`` and ``"batch_index"`` ints.
        """
        seeds = np.random.SeedSequence(self.seed, spawn_key=(self.rank, epoch, index))
        rng = np.random.default_rng(seeds)
        cases, centres, category = self.pool.draw(rng, self.batch_size)
        size, channels = self.batch_size, self.images[0].shape[0]
        *segments, target, case_index, centre, drawn = _batch_tensors(
            [
                ((size, channels, *p.input_shape), torch.float32)
                for p in self.geometry.pathways
            ]
            + [((size, *self.geometry.output_shape), torch.int64)]
            + [((size,), torch.int64), ((size, 3), torch.int64), ((size,), torch.int64)]
        )
        arrays = [s.numpy() for s in segments]
        for n in range(size):
            self._fill(rng, n, int(cases[n]), centres[n], arrays, target.numpy())
        case_index.numpy()[...] = cases
        centre.numpy()[...] = centres
        drawn.numpy()[...] = category
        return {
            "segments": segments,
            "target": target,
            "case_index": case_index,
            "centre": centre,
            "category": drawn,
            "epoch": int(epoch),
            "batch_index": int(index),
        }

    def _fill(
        self,
        rng: np.random.Generator,
        slot: int,
        case: int,
        centre: np.ndarray,
        segments: list[np.ndarray],
        target: np.ndarray,
    ) -> None:
        """Write one augmented sample into slot ``slot`` of the batch arrays."""
        image = self.images[case]
        spatial, intensity = draw_augmentation(
            rng, self.config.augmentation, image.shape[0]
        )
        # For an even output size the centre is the voxel just past the middle.
        start = centre - np.asarray(self.geometry.output_shape) // 2
        views = [s[slot] for s in segments]
        regions = extract_segments_into(views, image, self.geometry, start, spatial)
        extract_target(
            self.class_maps[case], self.geometry, start, spatial, target[slot]
        )
        if intensity is not None:
            for view, region in zip(views, regions, strict=True):
                intensity.apply_(view, region, self.low[case], self.high[case])

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its first batch."""
        self.epoch = int(epoch)
        self.next_batch = 0

    def mark_consumed(self, batch: Batch) -> None:
        """Record that ``batch`` has been trained on (moves the resume point)."""
        epoch, index = int(batch["epoch"]), int(batch["batch_index"]) + 1
        if index >= self.batches_per_epoch:
            epoch, index = epoch + 1, 0
        self.epoch, self.next_batch = epoch, index

    def state_dict(self) -> dict[str, int]:
        """The whole random state: the seed and the next batch to draw.

        The rank is not part of it: every rank is at the same position, so one
        rank's state resumes all of them, each on its own stream.
        """
        return {"seed": self.seed, "epoch": self.epoch, "next_batch": self.next_batch}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Continue from a :meth:`state_dict`; the seed is restored too."""
        missing = {"seed", "epoch", "next_batch"} - set(state)
        if missing:
            raise ValueError(f"sampler state lacks {sorted(missing)}")
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.next_batch = int(state["next_batch"])

    def data_loader(
        self, num_workers: int = 0, *, pin_memory: bool = False, **options: Any
    ) -> DataLoader:
        """A DataLoader that yields this sampler's batches in order.

        Args:
            num_workers: worker processes drawing batches (0 = in this process).
            pin_memory: page-lock batches for faster copies to a GPU.
            **options: further DataLoader options (e.g. ``prefetch_factor``).
        """
        if options.get("persistent_workers"):
            # Persistent workers keep the position they were started with and
            # would replay that epoch; fresh workers pick up the current one.
            raise ConfigError("persistent_workers is not supported by SegmentSampler")
        return DataLoader(
            self,
            batch_size=None,
            num_workers=num_workers,
            pin_memory=pin_memory,
            **options,
        )


def _batch_tensors(
    specs: list[tuple[tuple[int, ...], torch.dtype]],
) -> list[torch.Tensor]:
    """Empty tensors of the given shapes and dtypes, all views of one storage.

    A DataLoader worker moves every storage it sends into shared memory, at a
    cost per storage; one storage per batch halves the main process's share of
    that cost (measured: about 5.8 ms per paper-sized batch down to 2.7 ms).
    """
    sizes = [math.prod(shape) * dtype.itemsize for shape, dtype in specs]
    # 8-byte boundaries keep every view aligned for its dtype.
    starts = np.cumsum([0] + [-(-n // 8) * 8 for n in sizes])
    storage = torch.empty(int(starts[-1]), dtype=torch.uint8)
    return [
        storage[start : start + n].view(dtype).view(shape)
        for (shape, dtype), start, n in zip(specs, starts[:-1], sizes, strict=True)
    ]


def _check_settings(
    geometry: SegmentGeometry,
    config: SamplingConfig,
    batch_size: int,
    batches_per_epoch: int,
    seed: int,
    rank: int,
) -> None:
    for name, value, low in (
        ("batch_size", batch_size, 1),
        ("batches_per_epoch", batches_per_epoch, 1),
        ("seed", seed, 0),
        ("rank", rank, 0),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | np.integer)
            or value < low
        ):
            raise ConfigError(f"{name} must be an integer >= {low}, not {value!r}")
    if config.augmentation.rotate_in_plane and not is_square_in_plane(geometry):
        raise ConfigError(
            "augmentation.rotate_in_plane needs segments square in the i-j plane, "
            f"but the output shape is {geometry.output_shape}; use equal i and j "
            "segment sizes or turn rotations off"
        )


def _check_cases(cases: Sequence[Case]) -> None:
    if not cases:
        raise DatasetError("no cases to sample training segments from")
    problems = []
    channels = cases[0].image.shape[0]
    for case in cases:
        spatial_shape = case.image.shape[1:]
        if case.image.ndim != 4:
            problems.append(
                f"{case.case_id}: image must be (C, I, J, K), not {case.image.shape}"
            )
        elif case.image.shape[0] != channels:
            problems.append(
                f"{case.case_id}: {case.image.shape[0]} channels, but "
                f"{cases[0].case_id} has {channels}"
            )
        if case.label_map is None:
            problems.append(f"{case.case_id}: no label map; training needs one")
        elif case.label_map.shape != spatial_shape:
            problems.append(
                f"{case.case_id}: label map shape {case.label_map.shape} differs "
                f"from the image's {spatial_shape}"
            )
        if case.roi_mask is not None and case.roi_mask.shape != spatial_shape:
            problems.append(
                f"{case.case_id}: ROI mask shape {case.roi_mask.shape} differs from "
                f"the image's {spatial_shape}"
            )
    if problems:
        raise DatasetError(
            f"{len(problems)} problem(s) with the training cases: {problems[0]}",
            problems,
        )
