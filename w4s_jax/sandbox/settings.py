"""`SandboxSettings`: the `sandbox` config section, typed (standard library only).

Every limit must be positive: 0 would kill every workflow.
"""

from __future__ import annotations

import dataclasses

from w4s_jax.settings_fields import above, check_fields, setting

_POSITIVE = above(0)


@dataclasses.dataclass(frozen=True)
class SandboxSettings:
    sample_timeout_s: float = setting(120.0, "wall-clock limit per sample, seconds", _POSITIVE)
    workflow_timeout_s: float = setting(1800.0, "wall-clock limit for one workflow over all its samples, seconds",
                                        _POSITIVE)
    cpu_seconds: int = setting(60, "CPU-time limit per worker process, seconds", _POSITIVE)
    memory_mb: int = setting(1024, "address-space limit per worker process, MiB", _POSITIVE)
    max_file_mb: int = setting(16, "largest file a worker may write, MiB", _POSITIVE)
    max_open_files: int = setting(64, "open file descriptors per worker", _POSITIVE)
    max_output_bytes: int = setting(1_000_000, "largest answer or captured stdout per sample, bytes", _POSITIVE)
    execute_code_timeout_s: float = setting(10.0, "wall-clock limit for one execute_code() call, seconds", _POSITIVE)
    workers: int = setting(16, "sandbox worker processes per workflow (samples run concurrently)", _POSITIVE)
    max_threads: int = setting(32, "threads (tasks) per worker, enforced by RLIMIT_NPROC under the worker's own uid",
                               _POSITIVE)
    workdir_mb: int = setting(64, "size cap of a worker's private working directory (a tmpfs in its mount "
                                  "namespace), MiB", _POSITIVE)
    max_call_bytes: int = setting(1 << 20, "largest agent call (its frame's JSON) a worker may send, bytes; a larger "
                                           "one kills the worker", _POSITIVE)
    max_responses: int = setting(32, "most responses one agent call may ask for (num_of_response)", _POSITIVE)

    def __post_init__(self) -> None:
        check_fields(self, "sandbox")
