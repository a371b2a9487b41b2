"""Reproducible sphere packings and their label images (pure numpy), for the pore-size tests and
``tools/reference/porespy_psd.py`` (which runs in PoreSpy's own virtualenv and imports this file).

Spheres overlap freely (random sequential placement, no relaxation): AM spheres of random radii,
then small CBD spheres seated on AM surfaces, in a box periodic in x, y; the image is cut
between z = 0 and the box top. Labels: 0 pore, 1 AM, 2 CBD; a voxel is solid if its centre lies
inside (or on) a sphere, AM winning over CBD — the rule of ``twin.analysis.voxels.voxelize``,
written here independently by brute force.
"""

import numpy as np

CASES = {   # name: seed, box (µm), AM count and radius range (µm), CBD count and radius (µm)
    "electrode": dict(seed=6, box=(16.0, 16.0, 14.0), n_am=70, am_radius=(1.2, 3.0),
                      n_cbd=700, cbd_radius=0.65),
}
VOXEL_UM = 0.25


def sphere_packing(seed, box, n_am, am_radius, n_cbd, cbd_radius):
    """Centres (N, 3) µm, radii (N,) µm and phases (N,) 1 AM / 2 CBD of an overlapping packing.

    AM centres are uniform in the box; each CBD centre sits at r_AM + r_CBD / 2 from a random AM
    centre in a random direction, wrapped in x, y (z may leave the box: the cut trims it).
    """
    rng = np.random.default_rng(seed)
    box = np.asarray(box, float)
    am_centre = rng.uniform(0.0, 1.0, (n_am, 3)) * box
    am_r = rng.uniform(*am_radius, n_am)
    host = rng.integers(n_am, size=n_cbd)
    direction = rng.normal(size=(n_cbd, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    cbd_centre = am_centre[host] + (am_r[host] + 0.5 * cbd_radius)[:, None] * direction
    cbd_centre[:, :2] %= box[:2]
    positions = np.concatenate([am_centre, cbd_centre])
    radii = np.concatenate([am_r, np.full(n_cbd, float(cbd_radius))])
    phases = np.concatenate([np.ones(n_am, np.uint8), np.full(n_cbd, 2, np.uint8)])
    return positions, radii, phases


def rasterize(positions, radii, phases, box, voxel_um):
    """Label image (x, y, z) of the box [0, box) with x, y periodic, by brute force per sphere."""
    shape = tuple(int(round(length / voxel_um)) for length in box)
    labels = np.zeros(shape, np.uint8)
    for phase in (2, 1):                              # CBD first, so that AM overwrites it
        for centre, radius in zip(positions[phases == phase], radii[phases == phase]):
            first = np.ceil((centre - radius) / voxel_um - 0.5).astype(int)
            last = np.floor((centre + radius) / voxel_um - 0.5).astype(int)
            index = [np.arange(first[a], last[a] + 1) for a in range(3)]
            delta = [(i + 0.5) * voxel_um - centre[a] for a, i in enumerate(index)]
            d2 = (delta[0][:, None, None] ** 2 + delta[1][None, :, None] ** 2
                  + delta[2][None, None, :] ** 2)
            keep_z = (index[2] >= 0) & (index[2] < shape[2])
            inside = (d2 <= radius * radius)[:, :, keep_z]
            block = np.ix_(index[0] % shape[0], index[1] % shape[1], index[2][keep_z])
            labels[block] = np.where(inside, phase, labels[block])
    return labels


def case_image(name):
    """(labels, positions, radii, phases, box) of a named case of CASES."""
    spec = CASES[name]
    positions, radii, phases = sphere_packing(**spec)
    return rasterize(positions, radii, phases, spec["box"], VOXEL_UM), positions, radii, phases, \
        spec["box"]
