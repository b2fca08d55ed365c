"""The device mesh: three axes (data, fsdp, tensor) sized from the config, -1 = the rest."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh

from w4s_jax.parallel.settings import MeshSettings

MESH_AXES = ("data", "fsdp", "tensor")


def resolve_axis_sizes(sizes: Sequence[int], num_devices: int) -> tuple[int, ...]:
    """Replaces the one -1 in `sizes` by what is left of `num_devices`; checks the product."""
    sizes = tuple(int(s) for s in sizes)
    named = ", ".join(f"{a}={s}" for a, s in zip(MESH_AXES, sizes))
    if sizes.count(-1) > 1:
        raise ValueError(f"mesh ({named}): at most one axis may be -1 (the rest of the devices)")
    if any(s == 0 or s < -1 for s in sizes):
        raise ValueError(f"mesh ({named}): axis sizes must be positive or -1")
    fixed = int(np.prod([s for s in sizes if s != -1]))
    if -1 in sizes:
        if num_devices % fixed:
            raise ValueError(f"mesh ({named}): {num_devices} devices are not divisible by the fixed axes' product {fixed}")
        sizes = tuple(num_devices // fixed if s == -1 else s for s in sizes)
    if int(np.prod(sizes)) != num_devices:
        raise ValueError(
            f"mesh ({named}): product {int(np.prod(sizes))} does not match the device count {num_devices}; "
            "set one axis to -1 or pass `devices=`"
        )
    return sizes


def make_mesh(data: int = -1, fsdp: int = 1, tensor: int = 1, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh with axes ("data", "fsdp", "tensor") over `devices` (default: all devices)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = resolve_axis_sizes((data, fsdp, tensor), len(devices))
    axis_types = (AxisType.Auto,) * len(MESH_AXES)
    if len(devices) == len(jax.devices()):
        return jax.make_mesh(shape, MESH_AXES, axis_types=axis_types, devices=devices)
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES, axis_types=axis_types)


def mesh_from_settings(mesh: MeshSettings) -> Mesh:
    """The mesh a run's `mesh` settings describe (axis sizes data, fsdp, tensor; -1 = the rest)."""
    return make_mesh(mesh.data, mesh.fsdp, mesh.tensor)
