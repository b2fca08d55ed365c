"""Shape buckets: a long run with mixed prompt lengths and batch sizes compiles a bounded set of programs.

Every compiled program is keyed by (batch rows, prompt slots, new-token slots, sampling mode);
rounding each up to a power of two (with a floor and a cap) bounds the number of distinct keys by
log2(max/min) per axis instead of one program per distinct request shape.
"""

from __future__ import annotations


def next_power_of_two(value: int) -> int:
    return 1 << max(0, int(value) - 1).bit_length()


def bucket(value: int, minimum: int, maximum: int) -> int:
    """Smallest power of two >= value (at least `minimum`), capped at `maximum`; value must fit."""
    if value > maximum:
        raise ValueError(f"{value} exceeds the largest bucket {maximum}")
    return min(max(next_power_of_two(value), minimum), maximum)


def batch_bucket(rows: int, multiple: int, maximum: int) -> int:
    """Rows padded to a power of two that the data-parallel mesh axes (`multiple`) divide."""
    size = bucket(rows, multiple, maximum)
    return -(-size // multiple) * multiple


def chunks(count: int, size: int) -> list[range]:
    """Consecutive ranges of at most `size` covering 0..count-1."""
    return [range(start, min(start + size, count)) for start in range(0, count, size)]
