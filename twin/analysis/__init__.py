"""Structure analysis: pure functions of a packing (particles) or of a voxel label image.

Label convention for voxel images: 0 pore, 1 active material (AM), 2 carbon-binder domain (CBD);
axes (x, y, z), z normal to the current collector. Lengths in µm (LAMMPS micro units).
"""
