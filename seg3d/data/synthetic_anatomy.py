"""One synthetic brain-lesion case: realistic enough to train on, exact to redo.

Each case is a head in a box: scalp, skull, a brain whose outline is an
ellipsoid with a smooth irregular boundary, CSF around it and in two ventricles,
a folded grey-matter cortex over white matter, and one to three lesions. A
lesion has a core and, by default, a surrounding edema rim. Two MR-like
channels see the tissues differently:

=========  ====  =====  ====  ====  ==========  =====
channel    CSF   GM     WM    skin  lesion core edema
=========  ====  =====  ====  ====  ==========  =====
T1-like    dark  grey   light light dark        grey
FLAIR-like dark  grey   grey  grey  bright      light
=========  ====  =====  ====  ====  ==========  =====

so the core is told from edema by T1 and both from tissue by FLAIR. A smooth
multiplicative bias field (one per channel), a small blur (the scanner's point
spread) and Rician noise follow; voxels outside the head are zero, as after a
scanner's background masking. Intensities are rounded to integers and stored
as int16, as MR scanners do.

All sizes (head, brain, lesions, texture) scale with the field of view in
millimetres, so a 16-voxel test volume is a miniature of an 80-voxel one.
Every random draw comes from one ``numpy.random.Generator`` seeded by the
caller, so the same seed gives the same voxels on the same software stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from nibabel import orientations as ornt_codes
from scipy import ndimage
from scipy.spatial.transform import Rotation

from seg3d.io import Affine, Spacing, SpatialShape

CHANNEL_NAMES = ("T1", "FLAIR")
LESION, EDEMA = 1, 2

# Tissue intensities before gain and bias, one row per tissue, columns T1, FLAIR.
_BACKGROUND, _SCALP, _SKULL, _CSF, _GM, _WM, _CORE, _EDEMA = range(8)
_CONTRAST = np.array(
    [
        [0.00, 0.00],  # background (air)
        [0.80, 0.55],  # scalp: fat is bright on T1
        [0.08, 0.05],  # skull: cortical bone gives almost no signal
        [0.22, 0.10],  # CSF: dark on T1, suppressed on FLAIR
        [0.55, 0.60],  # grey matter
        [0.85, 0.45],  # white matter
        [0.25, 1.25],  # lesion core: dark on T1, bright on FLAIR
        [0.55, 0.95],  # edema: grey on T1, light on FLAIR
    ],
    dtype=np.float64,
)

Seed = int | Sequence[int]


class SyntheticCase(NamedTuple):
    """One synthetic case, in the axis order of the files it would be written to.

    Attributes:
        image: ``(C, I, J, K)`` float32 integer-valued intensities, channels
            in the order of :data:`CHANNEL_NAMES`.
        label_map: ``(I, J, K)`` uint8; 0 background, 1 lesion core, 2 edema.
        roi_mask: ``(I, J, K)`` bool brain mask; every lesion lies inside it.
        affine: 4x4 voxel-to-RAS+ mm matrix of the grid.
    """

    image: np.ndarray
    label_map: np.ndarray
    roi_mask: np.ndarray
    affine: Affine


def make_case(
    seed: Seed,
    shape: SpatialShape = (80, 80, 72),
    spacing: Spacing = (1.0, 1.0, 1.0),
    orientation: str = "RAS",
    num_lesions: int | None = None,
    edema: bool = True,
    noise: float = 0.03,
    bias: float = 0.15,
) -> SyntheticCase:
    """Generate one case, deterministic in ``seed``.

    Args:
        seed: seed of the case's ``numpy.random.Generator``.
        shape: spatial shape ``(I, J, K)`` of the returned arrays, each at
            least 8 voxels.
        spacing: voxel size in mm along i, j and k of the returned arrays.
        orientation: axis codes of the returned grid, e.g. ``"RAS"`` or
            ``"LPS"``; the anatomy is the same for every orientation of one
            seed, only the storage order of the voxels changes.
        num_lesions: number of lesions; drawn from 1 to 3 when ``None``.
        edema: give each lesion an edema rim labelled 2.
        noise: standard deviation of the Rician noise as a fraction of the
            white-matter T1 intensity.
        bias: standard deviation of the log bias field; 0 switches it off.

    Returns:
        The case; the image is float32 but integer-valued, so storing it as
        int16 loses nothing.
    """
    shape, spacing = _checked_grid(shape, spacing)
    if num_lesions is not None and num_lesions < 1:
        raise ValueError(f"num_lesions must be at least 1, not {num_lesions}")
    rng = np.random.default_rng(seed)

    # Anatomy is built on a RAS grid, then reoriented into the requested
    # storage order, so one seed gives one anatomy whatever the orientation.
    reorientation = _ras_to(orientation)
    ras_shape = tuple(shape[int(axis)] for axis in reorientation[:, 0])
    ras_spacing = tuple(spacing[int(axis)] for axis in reorientation[:, 0])
    coords = _centred_coordinates(ras_shape, ras_spacing)
    fov = np.array(ras_shape) * np.array(ras_spacing)

    tissue, roi_mask, brain_radius = _anatomy(rng, coords, fov, ras_spacing)
    count = int(rng.integers(1, 4)) if num_lesions is None else num_lesions
    label_map = _lesions(
        rng, coords, ras_spacing, tissue, roi_mask, brain_radius, count, edema
    )
    tissue[label_map == LESION] = _CORE
    tissue[label_map == EDEMA] = _EDEMA
    image = _intensities(rng, tissue, ras_spacing, brain_radius, noise, bias)

    affine = np.diag([*ras_spacing, 1.0])
    affine[:3, 3] = -(np.array(ras_shape) - 1) / 2 * np.array(ras_spacing)
    affine = affine @ ornt_codes.inv_ornt_aff(reorientation, ras_shape)
    return SyntheticCase(
        image=np.stack([_reorient(c, reorientation) for c in image]),
        label_map=_reorient(label_map, reorientation),
        roi_mask=_reorient(roi_mask, reorientation),
        affine=affine,
    )


def _checked_grid(
    shape: Sequence[int], spacing: Sequence[float]
) -> tuple[SpatialShape, Spacing]:
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"shape must be 3 sizes of at least 8 voxels, not {shape}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be 3 positive sizes in mm, not {spacing}")
    return (
        tuple(int(n) for n in shape),  # type: ignore[return-value]
        tuple(float(s) for s in spacing),
    )


def _ras_to(orientation: str) -> np.ndarray:
    codes = tuple(orientation.upper())
    try:
        target = ornt_codes.axcodes2ornt(codes)
    except ValueError as err:
        raise ValueError(
            f"orientation must be axis codes like 'LPS', not {orientation!r}"
        ) from err
    if len(codes) != 3 or np.isnan(target).any():
        raise ValueError(
            f"orientation must be axis codes like 'LPS', not {orientation!r}"
        )
    return ornt_codes.ornt_transform(ornt_codes.axcodes2ornt(("R", "A", "S")), target)


def _reorient(array: np.ndarray, reorientation: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(ornt_codes.apply_orientation(array, reorientation))


def _centred_coordinates(shape: SpatialShape, spacing: Spacing) -> list[np.ndarray]:
    """World coordinates in mm of voxel centres, origin at the volume centre.

    Returned as three broadcastable arrays ``(I, 1, 1)``, ``(1, J, 1)``,
    ``(1, 1, K)`` to keep memory low.
    """
    return [
        ((np.arange(n) - (n - 1) / 2) * s).reshape(
            [-1 if a == axis else 1 for a in range(3)]
        )
        for axis, (n, s) in enumerate(zip(shape, spacing, strict=True))
    ]


def _smooth_field(
    rng: np.random.Generator, shape: SpatialShape, spacing: Spacing, sigma_mm: float
) -> np.ndarray:
    """Gaussian-smoothed white noise, zero mean and unit standard deviation.

    Filtered in the Fourier domain, which costs the same for any ``sigma_mm``
    (a spatial Gaussian of 20 voxels would be slow); the field wraps around at
    the volume's faces, which the textures built from it do not mind.
    """
    spectrum = np.fft.rfftn(rng.standard_normal(shape))
    for axis, (n, s) in enumerate(zip(shape, spacing, strict=True)):
        frequency = np.fft.rfftfreq(n, s) if axis == 2 else np.fft.fftfreq(n, s)
        gain = np.exp(-2 * (np.pi * sigma_mm * frequency) ** 2)
        spectrum *= gain.reshape([-1 if a == axis else 1 for a in range(3)])
    field = np.fft.irfftn(spectrum, s=shape, axes=(0, 1, 2))
    field -= field.mean()
    std = field.std()
    return field / std if std > 0 else field


def _anatomy(
    rng: np.random.Generator,
    coords: list[np.ndarray],
    fov: np.ndarray,
    spacing: Spacing,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Tissue classes ``(I, J, K)`` uint8, brain mask and mean brain radius in mm."""
    shape = tuple(len(c.ravel()) for c in coords)
    head_axes = fov * 0.46 * rng.uniform(0.92, 1.0, size=3)
    brain_axes = head_axes * rng.uniform(0.82, 0.86)
    brain_radius = float(brain_axes.mean())
    outline = _smooth_field(rng, shape, spacing, 0.25 * brain_radius)
    folds = _smooth_field(rng, shape, spacing, 0.05 * brain_radius)

    # rho < 1 inside an ellipsoid; subtracting a smooth field makes the
    # boundary irregular the way a brain's outline is.
    brain_rho = _ellipsoid_rho(coords, brain_axes) - 0.05 * outline
    head_rho = _ellipsoid_rho(coords, head_axes) - 0.03 * outline
    roi_mask = brain_rho < 1.0

    tissue = np.full(shape, _BACKGROUND, dtype=np.uint8)
    tissue[head_rho < 1.0] = _SCALP
    tissue[(head_rho < 0.94) & ~roi_mask] = _SKULL
    tissue[roi_mask] = _CSF
    tissue[brain_rho < 0.95] = _GM
    tissue[brain_rho < 0.8 + 0.08 * folds] = _WM

    # Two ventricles either side of the midline (x is left-right).
    for side in (-1.0, 1.0):
        centre = brain_radius * np.array([0.12 * side, 0.05, 0.12])
        axes = brain_radius * np.array([0.09, 0.3, 0.12]) * rng.uniform(0.8, 1.2, 3)
        shifted = [c - centre[axis] for axis, c in enumerate(coords)]
        tissue[(_ellipsoid_rho(shifted, axes) - 0.1 * outline < 1.0) & roi_mask] = _CSF
    return tissue, roi_mask, brain_radius


def _ellipsoid_rho(coords: list[np.ndarray], axes: np.ndarray) -> np.ndarray:
    return np.sqrt(sum((c / a) ** 2 for c, a in zip(coords, axes, strict=True)))


def _lesions(
    rng: np.random.Generator,
    coords: list[np.ndarray],
    spacing: Spacing,
    tissue: np.ndarray,
    roi_mask: np.ndarray,
    brain_radius: float,
    count: int,
    edema: bool,
) -> np.ndarray:
    """Label map ``(I, J, K)`` uint8 of ``count`` blobby lesions inside the ROI."""
    label_map = np.zeros(tissue.shape, dtype=np.uint8)
    rim = np.zeros(tissue.shape, dtype=bool)
    texture = _smooth_field(rng, tissue.shape, spacing, 0.06 * brain_radius)

    # Lesions grow mostly in white matter, away from the brain's edge.
    candidates = np.flatnonzero((tissue == _WM) & roi_mask)
    if candidates.size == 0:
        candidates = np.flatnonzero(roi_mask)
    for _ in range(count):
        centre_index = np.unravel_index(rng.choice(candidates), tissue.shape)
        centre = np.array(
            [c.ravel()[i] for c, i in zip(coords, centre_index, strict=True)]
        )
        radius = brain_radius * rng.uniform(0.15, 0.3)
        core = _blob(rng, coords, centre, radius) - 0.15 * texture < 1.0
        core &= roi_mask
        core[centre_index] = True
        label_map[core] = LESION
        if edema:
            distance = ndimage.distance_transform_edt(~core, sampling=spacing)
            width = radius * rng.uniform(0.45, 0.8) * (1 + 0.3 * texture)
            rim |= (distance > 0) & (distance < width)
    label_map[rim & roi_mask & (label_map == 0)] = EDEMA
    return label_map


def _blob(
    rng: np.random.Generator,
    coords: list[np.ndarray],
    centre: np.ndarray,
    radius: float,
) -> np.ndarray:
    """Union of 2 to 4 rotated ellipsoids as a field that is below 1 inside."""
    rho = None
    for _ in range(int(rng.integers(2, 5))):
        offset = centre + rng.uniform(-0.5, 0.5, size=3) * radius
        axes = radius * rng.uniform(0.55, 1.15, size=3)
        # A normalised Gaussian quaternion is a uniformly random rotation.
        rotation = Rotation.from_quat(rng.standard_normal(4)).as_matrix()
        # Coordinates in the ellipsoid's own frame: rotate the offsets.
        shifted = [c - o for c, o in zip(coords, offset, strict=True)]
        local = [
            sum(rotation[row, col] * shifted[row] for row in range(3))
            for col in range(3)
        ]
        part = _ellipsoid_rho(local, axes)
        rho = part if rho is None else np.minimum(rho, part)
    return rho


def _intensities(
    rng: np.random.Generator,
    tissue: np.ndarray,
    spacing: Spacing,
    brain_radius: float,
    noise: float,
    bias: float,
) -> np.ndarray:
    """``(C, I, J, K)`` float32 integer-valued MR-like intensities."""
    head = tissue != _BACKGROUND
    channels = []
    for channel in range(len(CHANNEL_NAMES)):
        # Per-case contrast jitter and gain, as between scanners and sessions.
        contrast = _CONTRAST[:, channel] * rng.uniform(0.95, 1.05, size=len(_CONTRAST))
        gain = rng.uniform(300.0, 500.0)
        clean = contrast[tissue] * gain
        heterogeneity = _smooth_field(rng, tissue.shape, spacing, 0.1 * brain_radius)
        clean *= 1 + 0.04 * heterogeneity
        # The scanner's point spread: about half a voxel.
        clean = ndimage.gaussian_filter(clean, sigma=0.5, mode="nearest")
        bias_field = _smooth_field(rng, tissue.shape, spacing, 1.5 * brain_radius)
        clean *= np.exp(bias * bias_field)
        # Rician noise: the magnitude of a complex signal with Gaussian noise.
        sigma = noise * _CONTRAST[_WM, 0] * gain
        real = clean + rng.normal(0.0, sigma, size=tissue.shape)
        imaginary = rng.normal(0.0, sigma, size=tissue.shape)
        magnitude = np.hypot(real, imaginary)
        magnitude[~head] = 0.0
        channels.append(np.clip(np.rint(magnitude), 0, np.iinfo(np.int16).max))
    return np.stack(channels).astype(np.float32)  # (C, I, J, K)
