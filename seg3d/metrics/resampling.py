"""Putting a predicted label map onto the ground truth's grid (``--resample-pred``).

Nearest-neighbour resampling through SimpleITK: label values are copied, never
blended. Voxels of the truth's grid that fall outside the prediction's field of
view become background. This changes the prediction, so the command warns;
metrics computed this way are not those of the prediction as written.
"""

from __future__ import annotations

import numpy as np

from seg3d.errors import GeometryMismatchError
from seg3d.io.volume import Volume

# SimpleITK's world frame is LPS+, nibabel's (and seg3d's) RAS+.
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def resample_nearest(volume: Volume, reference: Volume) -> Volume:
    """``volume``'s voxels on ``reference``'s grid, by nearest neighbour.

    Args:
        volume: a 3D label map on any grid.
        reference: the volume whose shape and affine the result takes.

    Returns:
        A volume with ``reference``'s grid and header and ``volume``'s dtype.

    Raises:
        GeometryMismatchError: an affine is not a rotation times a scaling
            (sheared grids cannot be expressed in SimpleITK).
    """
    import SimpleITK as sitk

    moving = _to_simpleitk(volume)
    fixed = _to_simpleitk(reference.with_array(np.zeros((1, 1, 1), np.uint8)))
    fixed_size = [int(n) for n in reference.spatial_shape]
    resampled = sitk.Resample(
        moving,
        fixed_size,
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        fixed.GetOrigin(),
        fixed.GetSpacing(),
        fixed.GetDirection(),
        0,
        moving.GetPixelID(),
    )
    # SimpleITK arrays are (K, J, I); seg3d keeps (I, J, K).
    array = np.ascontiguousarray(sitk.GetArrayFromImage(resampled).transpose(2, 1, 0))
    return Volume(array, reference.affine.copy(), reference.header, volume.source)


def _to_simpleitk(volume: Volume):
    import SimpleITK as sitk

    spacing = np.asarray(volume.spacing)
    direction = _RAS_TO_LPS @ volume.affine[:3, :3] / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise GeometryMismatchError(
            f"{volume.name}: its affine is sheared, so it cannot be resampled "
            "with --resample-pred; resample it onto the truth's grid yourself"
        )
    image = sitk.GetImageFromArray(
        np.ascontiguousarray(volume.array.transpose(2, 1, 0))
    )
    image.SetSpacing(spacing.tolist())
    image.SetDirection(direction.ravel().tolist())
    image.SetOrigin((_RAS_TO_LPS @ volume.affine[:3, 3]).tolist())
    return image
