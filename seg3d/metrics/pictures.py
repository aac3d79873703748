"""Pictures a person can check: contours of truth and prediction over the image.

Per case, a mosaic: one row per chosen spot (the largest lesions, then the
largest disagreement between truth and prediction), one column per plane
(axial, coronal, sagittal) through it, zoomed around it. Truth and prediction
are drawn in two colours; classes differ by line style. Slices are shown in the
closest RAS orientation in the neurological convention (the patient's right on
the right), with the voxel spacing's aspect ratio.

matplotlib is driven through its Agg canvas directly, never through pyplot, so
nothing depends on a display or on global figure state (safe in worker
processes).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from seg3d.io import Reorientation, Volume, atomic_path, check_writable
from seg3d.metrics.structures import Structure

logger = logging.getLogger(__name__)

TRUTH_COLOUR = "#2fe02f"
PREDICTION_COLOUR = "#ff2bd6"
LINE_STYLES = ("solid", "dashed", "dotted", "dashdot", (0, (6, 2, 1, 2, 1, 2)))
MAX_LESIONS = 3
MIN_FIELD_OF_VIEW_MM = 60.0
SUMMARY_NAME = "summary.png"

# (title, in-plane axes (horizontal, vertical), normal axis, edge letters
# (left, right, bottom, top)) in RAS voxel axes i, j, k.
_PLANES = (
    ("axial", (0, 1), 2, ("L", "R", "P", "A")),
    ("coronal", (0, 2), 1, ("L", "R", "I", "S")),
    ("sagittal", (1, 2), 0, ("P", "A", "I", "S")),
)


@dataclass(frozen=True)
class _Spot:
    """Where a mosaic row looks: a voxel to slice through and a box to zoom to."""

    title: str
    centre: tuple[int, int, int]
    box: tuple[slice, slice, slice]


@dataclass(frozen=True)
class _Scene:
    """One case in RAS voxel order, ready to draw."""

    image: np.ndarray
    truth: np.ndarray
    prediction: np.ndarray
    spacing: np.ndarray
    affine: np.ndarray
    window: tuple[float, float]


def case_mosaic(
    image: Volume,
    truth: np.ndarray,
    prediction: np.ndarray,
    classes: Sequence[Structure],
    metrics: dict,
    case_id: str,
) -> bytes:
    """The case's PNG: contours of truth and prediction at its worst spots.

    Args:
        image: the scan, on the truth's grid; its first channel is drawn.
        truth: ``(I, J, K)`` integer true label map on the image's grid.
        prediction: ``(I, J, K)`` integer predicted label map, same grid.
        classes: the classes to outline, one line style each.
        metrics: structure name to its metrics, for the title.
        case_id: the case, for the title.

    Returns:
        The PNG file's bytes.
    """
    scene = _scene(image, truth, prediction)
    spots = _spots(scene)
    figure = _new_figure(width=10.0, height=3.3 * len(spots) + 1.3)
    for row, spot in enumerate(spots):
        for column, plane in enumerate(_PLANES):
            axes = figure.add_subplot(len(spots), 3, row * 3 + column + 1)
            _draw_panel(axes, scene, classes, spot, plane)
            if column == 0:
                axes.set_ylabel(spot.title, fontsize=10)
    dice = ", ".join(
        f"{structure.name} {metrics[structure.name].dice:.3f}"
        for structure in classes
        if structure.name in metrics
    )
    figure.suptitle(f"{case_id}    Dice: {dice}" if dice else case_id, fontsize=12)
    figure.legend(
        handles=_legend_handles(classes),
        loc="outside lower center",
        ncol=min(len(classes) + 2, 6),
        fontsize=9,
        frameon=False,
    )
    return _png(figure)


def _scene(image: Volume, truth: np.ndarray, prediction: np.ndarray) -> _Scene:
    reorientation = Reorientation.for_grid(image.affine, image.spatial_shape)
    intensities = reorientation.to_canonical(image.channel(0).astype(np.float32))
    affine = reorientation.canonical_affine(image.affine)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    # Robust window over the non-zero voxels (the body, for skull-stripped scans).
    sample = intensities[::2, ::2, ::2]
    sample = sample[sample != 0] if np.any(sample != 0) else sample.ravel()
    low, high = np.percentile(sample, [0.5, 99.5]) if sample.size else (0.0, 1.0)
    return _Scene(
        image=intensities,
        truth=reorientation.to_canonical(truth),
        prediction=reorientation.to_canonical(prediction),
        spacing=spacing,
        affine=affine,
        window=(float(low), float(max(high, low + 1e-6))),
    )


def _spots(scene: _Scene) -> list[_Spot]:
    """The largest lesions of truth or prediction, then the largest disagreement."""
    voxel_ml = float(np.prod(scene.spacing)) / 1000.0
    union = (scene.truth > 0) | (scene.prediction > 0)
    spots = [
        _Spot(f"lesion {rank + 1}: {_volume_text(size * voxel_ml)}", centre, box)
        for rank, (size, centre, box) in enumerate(_largest_components(union))
    ][:MAX_LESIONS]
    disagreement = _largest_components(scene.truth != scene.prediction)[:1]
    for size, centre, box in disagreement:
        title = f"largest error: {_volume_text(size * voxel_ml)}"
        spots.append(_Spot(title, centre, box))
    if not spots:
        middle = tuple(n // 2 for n in scene.image.shape)
        whole = tuple(slice(0, n) for n in scene.image.shape)
        spots.append(_Spot("no structure in truth or prediction", middle, whole))
    return spots


def _volume_text(millilitres: float) -> str:
    # Small lesions matter too: below 0.1 ml, show mm³ rather than "0.00 ml".
    if millilitres < 0.1:
        return f"{millilitres * 1000:.0f} mm³"
    return f"{millilitres:.2f} ml"


def _largest_components(mask: np.ndarray) -> list[tuple[int, tuple, tuple]]:
    """(voxel count, centre voxel, box) of the biggest connected components.

    The centre is, per axis, the slice holding most of the component's voxels,
    so that each plane cuts the component where it is widest.
    """
    components, count = ndimage.label(mask)
    if count == 0:
        return []
    sizes = np.bincount(components.ravel())[1:]  # (count,)
    boxes = ndimage.find_objects(components)
    found = []
    for index in np.argsort(sizes)[::-1][:MAX_LESIONS]:
        box = boxes[index]
        component = components[box] == index + 1
        centre = tuple(
            box[axis].start
            + int(
                np.argmax(component.sum(axis=tuple(a for a in range(3) if a != axis)))
            )
            for axis in range(3)
        )
        found.append((int(sizes[index]), centre, box))
    return found


def _draw_panel(axes, scene: _Scene, classes, spot: _Spot, plane) -> None:
    title, (horizontal, vertical), normal, letters = plane
    view = [slice(None)] * 3
    view[normal] = spot.centre[normal]
    for axis in (horizontal, vertical):
        view[axis] = _zoom(spot.box[axis], scene.spacing[axis], scene.image.shape[axis])
    view = tuple(view)

    def section(volume: np.ndarray) -> np.ndarray:
        # (horizontal, vertical) -> rows = vertical for imshow.
        return volume[view].T

    aspect = scene.spacing[vertical] / scene.spacing[horizontal]
    low, high = scene.window
    axes.imshow(
        section(scene.image),
        cmap="gray",
        vmin=low,
        vmax=high,
        origin="lower",
        aspect=aspect,
        interpolation="nearest",
    )
    for index, structure in enumerate(classes):
        style = LINE_STYLES[index % len(LINE_STYLES)]
        for label_map, colour, width in (
            (scene.truth, TRUTH_COLOUR, 2.4),
            (scene.prediction, PREDICTION_COLOUR, 1.3),
        ):
            mask = np.isin(section(label_map), structure.label_values)
            if mask.any() and not mask.all():
                # Level 0.8 draws each line 0.3 voxel inside its own class, so
                # two classes sharing a border keep two visible lines.
                axes.contour(
                    mask.astype(np.float32),
                    levels=[0.8],
                    colors=[colour],
                    linestyles=[style],
                    linewidths=width,
                )
    world = scene.affine[normal, :3] @ np.array(spot.centre) + scene.affine[normal, 3]
    axis_name = "xyz"[normal]
    axes.set_title(f"{title}  {axis_name} = {world:.1f} mm", fontsize=9)
    _edge_letters(axes, letters)
    axes.set_xticks([])
    axes.set_yticks([])


def _zoom(extent: slice, spacing: float, size: int) -> slice:
    """A window around ``extent``: 1.6 times its size, at least 60 mm."""
    centre = (extent.start + extent.stop - 1) / 2.0
    half = max(0.8 * (extent.stop - extent.start), MIN_FIELD_OF_VIEW_MM / 2 / spacing)
    start = max(int(np.floor(centre - half)), 0)
    stop = min(int(np.ceil(centre + half)) + 1, size)
    return slice(start, stop)


def _edge_letters(axes, letters: tuple[str, str, str, str]) -> None:
    style = {"color": "#ffd23f", "fontsize": 8, "transform": axes.transAxes}
    left, right, bottom, top = letters
    axes.text(0.02, 0.5, left, ha="left", va="center", **style)
    axes.text(0.98, 0.5, right, ha="right", va="center", **style)
    axes.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)
    axes.text(0.5, 0.98, top, ha="center", va="top", **style)


def _legend_handles(classes: Sequence[Structure]) -> list:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=TRUTH_COLOUR, linewidth=2.4, label="truth"),
        Line2D([], [], color=PREDICTION_COLOUR, linewidth=1.3, label="prediction"),
    ]
    for index, structure in enumerate(classes):
        style = LINE_STYLES[index % len(LINE_STYLES)]
        handles.append(
            Line2D(
                [],
                [],
                color="0.25",
                linestyle=style,
                linewidth=1.5,
                label=structure.name,
            )
        )
    return handles


def summary_figure(evaluation) -> bytes:
    """Dice and HD95 per structure across cases: box plots with every case.

    Undefined values (HD95 where one mask is empty) are left out; each label
    says how many cases entered. The case with the lowest Dice of each
    structure is named, so the worst failures can be looked up.

    Args:
        evaluation: a :class:`~seg3d.metrics.evaluation.Evaluation`.
    """
    structures = evaluation.structures
    figure = _new_figure(width=max(7.0, 2.0 * len(structures) + 3), height=4.8)
    rng = np.random.default_rng(0)  # fixed jitter: the same report, the same picture
    for column, (metric, label) in enumerate(
        (("dice", "Dice"), ("hd95_mm", "HD95 (mm)"))
    ):
        axes = figure.add_subplot(1, 2, column + 1)
        values = [
            np.array(
                [getattr(case.metrics[s.name], metric) for case in evaluation.cases]
            )
            for s in structures
        ]
        defined = [v[~np.isnan(v)] for v in values]
        positions = np.arange(1, len(structures) + 1)
        axes.boxplot(
            [v if v.size else [np.nan] for v in defined],
            positions=positions,
            widths=0.5,
            showfliers=False,
        )
        for position, points in zip(positions, defined, strict=True):
            jitter = rng.uniform(-0.12, 0.12, points.size)
            axes.scatter(position + jitter, points, s=14, alpha=0.7, color="#1f6fd1")
        if metric == "dice":
            axes.set_ylim(-0.02, 1.02)
            _name_worst(axes, evaluation, positions)
        else:
            axes.set_ylim(bottom=0)
        axes.set_xticks(positions)
        axes.set_xticklabels(
            [
                f"{s.name}\n(n={v.size})"
                for s, v in zip(structures, defined, strict=True)
            ],
            fontsize=9,
        )
        axes.set_ylabel(label)
        axes.grid(axis="y", alpha=0.3)
    figure.suptitle(f"{len(evaluation.cases)} cases", fontsize=11)
    return _png(figure)


def _name_worst(axes, evaluation, positions) -> None:
    if len(evaluation.cases) < 2:
        return
    for position, structure in zip(positions, evaluation.structures, strict=True):
        worst = min(
            evaluation.cases, key=lambda case: case.metrics[structure.name].dice
        )
        dice = worst.metrics[structure.name].dice
        axes.annotate(
            worst.case_id,
            (position, dice),
            xytext=(6, -3),
            textcoords="offset points",
            fontsize=7,
            color="#b0201a",
        )


def picture_paths(case_ids: Sequence[str], folder: Path) -> list[Path]:
    """The files :func:`write_pictures` writes: one per case, then the summary."""
    return [folder / f"{case_id}.png" for case_id in case_ids] + [folder / SUMMARY_NAME]


def write_pictures(evaluation, folder: Path, overwrite: bool = False) -> list[Path]:
    """Write each case's mosaic and the summary figure into ``folder``.

    Every target is checked before the first is written, so an existing file
    (without ``overwrite``) leaves the folder untouched.
    """
    paths = picture_paths([case.case_id for case in evaluation.cases], folder)
    for path in paths:
        check_writable(path, overwrite)
    contents = [case.picture for case in evaluation.cases]
    contents.append(summary_figure(evaluation))
    for path, content in zip(paths, contents, strict=True):
        if content is None:
            raise ValueError(f"no picture was drawn for {path.stem}")
        with atomic_path(path, overwrite) as temporary:
            temporary.write_bytes(content)
    return paths


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
