"""`MeshSettings`: the `mesh` config section, typed (standard library only)."""

from __future__ import annotations

import dataclasses

from w4s_jax.settings_fields import check_fields, setting


def _axis(value: object) -> str:
    return "" if isinstance(value, int) and not isinstance(value, bool) and (value >= 1 or value == -1) else \
        "must be >= 1 or -1 (the devices left over)"


@dataclasses.dataclass(frozen=True)
class MeshSettings:
    data: int = setting(-1, "data-parallel mesh axis size; -1 = all devices left over", _axis)
    fsdp: int = setting(1, "fully sharded data-parallel axis size (parameters sharded); -1 = the rest", _axis)
    tensor: int = setting(1, "tensor-parallel axis size (heads and MLP sharded); -1 = the rest", _axis)

    def __post_init__(self) -> None:
        check_fields(self, "mesh")
