"""Reproducible synthetic electrode label images (pure numpy), shared by tests and reference scripts.

Labels follow `twin.analysis`: 0 pore, 1 active material (AM), 2 carbon-binder domain (CBD); axes (x, y, z).
The images are overlapping-sphere packings, periodic in all three axes (spheres wrap around the box):
polydisperse AM spheres until a target AM volume fraction is painted, then small CBD spheres seated on AM
surfaces (centre at the AM radius plus half a CBD radius from an AM centre, random direction), painted only
into pore voxels, until a target CBD fraction is reached. Only numpy is used, so reference scripts running in
other virtualenvs can import this file and rebuild exactly the same image from its seed.
"""

import numpy as np


def _paint_sphere(img, centre, radius, label, only_into=None):
    """Paint a ball (voxel centres within `radius` of `centre`, periodic wrap) and return the voxels it changed."""
    lo = np.floor(centre - radius).astype(int)
    hi = np.ceil(centre + radius).astype(int) + 1
    axes = [np.arange(lo[a], hi[a]) for a in range(3)]
    d2 = sum(((ax + 0.5 - centre[a]) ** 2).reshape([-1 if b == a else 1 for b in range(3)])
             for a, ax in enumerate(axes))
    idx = np.ix_(*[ax % img.shape[a] for a, ax in enumerate(axes)])
    block = img[idx]
    inside = d2 <= radius * radius
    if only_into is None:
        change = inside & (block != label)
    else:
        change = inside & (block == only_into)
    block[change] = label
    img[idx] = block
    return int(change.sum())


def electrode_image(shape, seed, am_radius=(5.0, 20.0), cbd_radius=(2.0, 3.0), am_fraction=0.5,
                    cbd_fraction=0.1):
    """Overlapping-sphere electrode label image (uint8, axes x, y, z).

    Args:
        shape: (nx, ny, nz) in voxels.
        seed: integer seed of `numpy.random.default_rng`; the same seed gives the same image.
        am_radius: AM sphere radii are drawn uniformly from this range (voxels).
        cbd_radius: CBD sphere radii are drawn uniformly from this range (voxels).
        am_fraction, cbd_fraction: target volume fractions of labels 1 and 2 (painting stops at the first
            sphere that reaches the target); the porosity is about 1 - am_fraction - cbd_fraction.

    Returns:
        uint8 array of `shape` with labels 0 (pore), 1 (AM), 2 (CBD).
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive sizes (nx, ny, nz), got {shape}")
    if not (0.0 <= am_fraction and 0.0 <= cbd_fraction and am_fraction + cbd_fraction < 1.0):
        raise ValueError(f"need am_fraction, cbd_fraction >= 0 with a sum < 1, got {am_fraction}, {cbd_fraction}")
    rng = np.random.default_rng(seed)
    box = np.array(shape, dtype=float)
    img = np.zeros(shape, dtype=np.uint8)
    total = img.size
    am_centres, am_radii = [], []
    painted = 0
    while painted < am_fraction * total:
        centre = rng.uniform(0.0, 1.0, 3) * box
        radius = rng.uniform(*am_radius)
        painted += _paint_sphere(img, centre, radius, 1)
        am_centres.append(centre)
        am_radii.append(radius)
    painted = 0
    while am_centres and painted < cbd_fraction * total:
        host = rng.integers(len(am_centres))
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        radius = rng.uniform(*cbd_radius)
        centre = (am_centres[host] + (am_radii[host] + 0.5 * radius) * direction) % box
        painted += _paint_sphere(img, centre, radius, 2, only_into=0)
    return img
