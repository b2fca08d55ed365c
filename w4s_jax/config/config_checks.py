"""Up-front checks of a whole config, so a bad value fails in a second with the field's name.

Subcommands call `validate(config)` first thing in `main(config)`: without it a typo in a preset name
or an impossible mesh shows up minutes later, after weights are loaded or on a TPU pod after every
host has started. A section's own ranges are its typed settings' checks (building them runs them);
what is checked here needs more than one field or the machine: registries, the device count, the
environment. Each check only looks at the sections the config has, and imports the package that
owns a registry (tasks, JAX) only when that section is checked.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse
from collections.abc import Callable, Iterable

import ml_collections

from w4s_jax.config.typed import section_settings
from w4s_jax.config_errors import ConfigError
from w4s_jax.settings_fields import above, at_least

LOOPBACK_HOSTS = ("localhost", "ip6-localhost")
DEMO_EXECUTORS = ("stand_in", "smollm2", "simulated", "external")  # demo.executor (cli/local_executor.py)


def _require(condition: bool, field: str, problem: str, fix: str) -> None:
    if not condition:
        raise ConfigError(f"{field}: {problem}; fix: {fix}")


def check_model(config: ml_collections.ConfigDict) -> None:
    """The preset must be one the models package knows, and the dtypes ones JAX accepts."""
    section_settings(config, "model")


def _device_count(num_devices: int | None) -> int:
    if num_devices is not None:
        return num_devices
    import jax

    return jax.device_count()


def mesh_shape(config: ml_collections.ConfigDict, num_devices: int | None = None) -> tuple[int, int, int]:
    """(data, fsdp, tensor) with -1 resolved; an impossible mesh raises ConfigError naming `mesh`."""
    from w4s_jax.parallel.mesh import resolve_axis_sizes

    num_devices = _device_count(num_devices)
    sizes = (config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
    try:
        return resolve_axis_sizes(sizes, num_devices)
    except ValueError as error:
        raise ConfigError(
            f"mesh: {error}; fix: choose --config.mesh.data/fsdp/tensor whose product is {num_devices} "
            "(or set one of them to -1)"
        ) from error


def check_mesh(config: ml_collections.ConfigDict, num_devices: int | None = None) -> None:
    """The mesh axes must multiply to the device count (one axis may be -1 = the rest)."""
    mesh_shape(config, num_devices)


def check_train(config: ml_collections.ConfigDict, num_devices: int | None = None) -> None:
    """Batch shape of the RLAO trainer: positive, and the micro-batch splits evenly over data x fsdp."""
    train = section_settings(config, "train")
    if "mesh" in config and "micro_batch" in config.train:
        data, fsdp, _ = mesh_shape(config, num_devices)
        _require(train.micro_batch % (data * fsdp) == 0, "train.micro_batch",
                 f"{train.micro_batch} rows do not split over data x fsdp = {data * fsdp} devices",
                 f"use a multiple of {data * fsdp}")


def check_rlao(config: ml_collections.ConfigDict) -> None:
    section_settings(config, "rlao")


def is_loopback_url(url: str) -> bool:
    """True for http(s)://localhost, 127.x.x.x or ::1 — endpoints on this machine that need no key."""
    host = urllib.parse.urlsplit(url.strip()).hostname or ""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_executor(config: ml_collections.ConfigDict) -> None:
    """Budget and limits must be sane; a remote endpoint needs its API key in the environment."""
    executor = section_settings(config, "executor")
    remote = [url for url in executor.urls if not is_loopback_url(url)]
    if remote and executor.api_key_env:
        _require(bool(os.environ.get(executor.api_key_env)), "executor.api_key_env",
                 f"environment variable {executor.api_key_env} is empty but {remote[0]} is not on this machine",
                 f"export {executor.api_key_env}=<key>, or set --config.executor.api_key_env='' for an endpoint "
                 "without auth")


def check_task(config: ml_collections.ConfigDict) -> None:
    """The benchmark must be registered; limits cannot be negative."""
    from w4s_jax.tasks import known_tasks

    task = section_settings(config, "task")
    _require(task.name in known_tasks(), "task.name", f"unknown benchmark {task.name!r}",
             f"use one of {', '.join(known_tasks())}")


def check_sampling(config: ml_collections.ConfigDict) -> None:
    section_settings(config, "sampling")


def check_sandbox(config: ml_collections.ConfigDict) -> None:
    section_settings(config, "sandbox")


def check_demo(config: ml_collections.ConfigDict) -> None:
    """`demo.executor` must name an executor `cli/local_executor.py` can start (or 'external')."""
    demo = config.demo
    _require(demo.executor in DEMO_EXECUTORS, "demo.executor", f"unknown executor {demo.executor!r}",
             f"use one of {', '.join(DEMO_EXECUTORS)}")
    for name, check in (("smollm2_max_batch", above(0)), ("smollm2_max_tokens", above(0)),
                        ("stand_in_latency_ms", at_least(0))):
        if name in demo:
            problem = check(demo[name])
            _require(not problem, f"demo.{name}", f"{problem}, got {demo[name]!r}", f"pass --config.demo.{name}=<a number>")
    if "stand_in_accuracy" in demo:
        _require(0.0 <= demo.stand_in_accuracy <= 1.0, "demo.stand_in_accuracy",
                 f"must be a probability in [0, 1], got {demo.stand_in_accuracy!r}", "pass a value in [0, 1]")


def check_output_dir(config: ml_collections.ConfigDict) -> None:
    _require(bool(str(config.output_dir).strip()), "output_dir", "is empty", "pass --config.output_dir=<a directory>")


CHECKS: dict[str, Callable[..., None]] = {
    "model": check_model,
    "mesh": check_mesh,
    "train": check_train,
    "rlao": check_rlao,
    "executor": check_executor,
    "task": check_task,
    "sampling": check_sampling,
    "sandbox": check_sandbox,
    "output_dir": check_output_dir,
    "demo": check_demo,
}

DEVICE_DEPENDENT = ("mesh", "train")


def validate(config: ml_collections.ConfigDict, sections: Iterable[str] | None = None, *,
             num_devices: int | None = None) -> None:
    """Raises `ConfigError("field: problem; fix: ...")` for the first bad value found.

    `sections` limits the checks to what a subcommand uses (e.g. `train` passes ("model", "mesh") so it
    does not ask for an executor API key); by default every section the config has is checked.
    `num_devices` checks the mesh against another device count (AOT for a TPU topology); the default
    is `jax.device_count()`.
    """
    wanted = list(CHECKS) if sections is None else list(sections)
    unknown = [name for name in wanted if name not in CHECKS]
    if unknown:
        raise ValueError(f"no config check named {unknown}; known: {sorted(CHECKS)}")
    for name in wanted:
        if name not in config:
            continue
        if name in DEVICE_DEPENDENT:
            CHECKS[name](config, num_devices)
        else:
            CHECKS[name](config)
