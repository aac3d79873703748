"""Resampling arrays between voxel grids with SimpleITK.

A grid is a spatial shape ``(I, J, K)`` and a 4x4 affine mapping voxel indices
to RAS+ millimetres (nibabel's convention). SimpleITK describes the same grid by
origin, spacing and direction in LPS+ millimetres and stores arrays as
``(K, J, I)``; :func:`sitk_image` and :func:`_sitk_geometry` are the only places
here that convert between the two.

Points of the target grid that fall outside the source grid (at most half a
target voxel beyond its outer face, see :func:`resampled_grid`) take the value
of the nearest source voxel rather than a constant, so that probabilities stay
probabilities and edges do not fade.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from seg3d.io.volume import Affine, SpatialShape

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
_INTERPOLATORS = {
    "nearest": sitk.sitkNearestNeighbor,
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,
}


def resampled_grid(
    spatial_shape: SpatialShape, affine: Affine, target_spacing: Sequence[float]
) -> tuple[SpatialShape, Affine]:
    """The grid covering the same field of view at ``target_spacing``.

    The axes keep their directions and the outer corner of voxel 0 (half a
    voxel before its centre) stays where it is. Each axis gets
    ``round(size * spacing / target)`` voxels, at least one, so its far face
    moves by at most half a target voxel.

    Args:
        spatial_shape: ``(I, J, K)`` of the source grid.
        affine: 4x4 voxel-to-RAS+ mm affine of the source grid.
        target_spacing: voxel size in mm along the source grid's i, j, k.

    Returns:
        The target grid's ``(I, J, K)`` and its 4x4 affine.
    """
    spacing = _spacing(affine)
    target = np.asarray(target_spacing, dtype=np.float64)
    extent = np.asarray(spatial_shape, dtype=np.float64) * spacing  # mm
    shape = np.maximum(1, np.floor(extent / target + 0.5)).astype(int)

    # Target voxel n sits at source index ratio * n + (ratio - 1) / 2, which
    # puts target index -0.5 (the corner) on source index -0.5.
    ratio = target / spacing
    step = np.eye(4)
    step[:3, :3] = np.diag(ratio)
    step[:3, 3] = (ratio - 1.0) / 2.0
    target_shape = (int(shape[0]), int(shape[1]), int(shape[2]))
    return target_shape, affine @ step


def resample(
    array: np.ndarray,
    source_affine: Affine,
    target_shape: SpatialShape,
    target_affine: Affine,
    interpolation: str,
) -> np.ndarray:
    """Resample one ``(I, J, K)`` array onto another grid.

    Args:
        array: ``(I, J, K)`` voxels of the source grid; bool is resampled as
            uint8 and returned as bool.
        source_affine: 4x4 voxel-to-RAS+ mm affine of ``array``.
        target_shape: ``(I, J, K)`` of the target grid.
        target_affine: 4x4 voxel-to-RAS+ mm affine of the target grid.
        interpolation: ``"nearest"``, ``"linear"`` or ``"bspline"`` (cubic).

    Returns:
        ``(I, J, K)`` of ``target_shape``, of the input's dtype.
    """
    is_bool = array.dtype == np.bool_
    source = sitk_image(array.astype(np.uint8) if is_bool else array, source_affine)

    resampler = sitk.ResampleImageFilter()
    origin, spacing, direction = _sitk_geometry(target_affine)
    resampler.SetSize([int(n) for n in target_shape])
    resampler.SetOutputOrigin(origin)
    resampler.SetOutputSpacing(spacing)
    resampler.SetOutputDirection(direction)
    resampler.SetInterpolator(_INTERPOLATORS[interpolation])
    resampler.SetUseNearestNeighborExtrapolator(True)
    resampled = sitk.GetArrayFromImage(resampler.Execute(source))

    result = np.ascontiguousarray(resampled.transpose(2, 1, 0))  # (I, J, K)
    return result.astype(bool) if is_bool else result


def resample_channels(
    image: np.ndarray,
    source_affine: Affine,
    target_shape: SpatialShape,
    target_affine: Affine,
    interpolation: str,
) -> np.ndarray:
    """Resample each channel of ``(C, I, J, K)`` float32 intensities alike.

    Returns:
        ``(C, I, J, K)`` float32 on the target grid.
    """
    channels = [
        resample(
            channel.astype(np.float32, copy=False),
            source_affine,
            target_shape,
            target_affine,
            interpolation,
        )
        for channel in image
    ]
    return np.stack(channels).astype(np.float32, copy=False)  # (C, I, J, K)


def resample_label_map(
    label_map: np.ndarray,
    source_affine: Affine,
    target_shape: SpatialShape,
    target_affine: Affine,
    interpolation: str,
) -> np.ndarray:
    """Resample integer labels by nearest neighbour or per label.

    ``"per_label"`` resamples the indicator of each label value present
    linearly and gives every target voxel the label whose indicator is largest
    there (ties go to the smaller label value). Edges follow the smooth
    interpolated boundary instead of the source grid's staircase.

    Args:
        label_map: ``(I, J, K)`` integer label values.
        interpolation: ``"nearest"`` or ``"per_label"``.

    Returns:
        ``(I, J, K)`` of ``target_shape``, of ``label_map``'s dtype.
    """
    if interpolation == "nearest":
        return resample(
            label_map, source_affine, target_shape, target_affine, "nearest"
        )
    if interpolation != "per_label":
        raise ValueError(
            f'interpolation must be "nearest" or "per_label", not {interpolation!r}'
        )

    values = np.unique(label_map)
    result = np.full(target_shape, values[0], dtype=label_map.dtype)
    best = np.full(target_shape, -np.inf, dtype=np.float32)
    # One indicator at a time keeps memory at two target-sized arrays however
    # many labels there are.
    for value in values:
        indicator = (label_map == value).astype(np.float32)
        weight = resample(
            indicator, source_affine, target_shape, target_affine, "linear"
        )
        larger = weight > best
        result[larger] = value
        best[larger] = weight[larger]
    return result


def sitk_image(array: np.ndarray, affine: Affine) -> sitk.Image:
    """A SimpleITK image of ``(I, J, K)`` voxels on the grid ``affine`` describes.

    SimpleITK's index ``(x, y, z)`` is seg3d's ``(i, j, k)``, and its physical
    points are the affine's RAS+ points with x and y negated (LPS+).
    """
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    origin, spacing, direction = _sitk_geometry(affine)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def _sitk_geometry(
    affine: Affine,
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """Origin, spacing and row-major direction, LPS+ mm, of an affine's grid."""
    spacing = np.asarray(_spacing(affine))
    direction = _LPS_TO_RAS @ affine[:3, :3] / spacing  # columns scaled to unit
    origin = _LPS_TO_RAS @ affine[:3, 3]
    return (
        tuple(float(v) for v in origin),
        tuple(float(v) for v in spacing),
        tuple(float(v) for v in direction.ravel()),
    )


def _spacing(affine: Affine) -> tuple[float, float, float]:
    zooms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    return float(zooms[0]), float(zooms[1]), float(zooms[2])
