"""Every subcommand in `w4s_jax.cli.main.SUBCOMMANDS` explains itself and its config fields."""

from __future__ import annotations

import importlib
import pathlib
import subprocess
import sys

import pytest

from w4s_jax.cli.main import SUBCOMMANDS
from w4s_jax.config.fields import iter_leaves
from w4s_jax.config.loading import CONFIGS_DIR, load_config_file

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def w4s_jax(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "w4s_jax.cli.main", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO_ROOT)


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_subcommand_module_has_the_cli_contract(name: str) -> None:
    module = importlib.import_module(f"w4s_jax.cli.{name}")
    assert isinstance(module.DOC, str) and module.DOC.strip()
    assert callable(module.main)
    default = CONFIGS_DIR / module.DEFAULT_CONFIG
    assert default.is_file(), f"{name}: DEFAULT_CONFIG {module.DEFAULT_CONFIG} is not in configs/"


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_subcommand_help_exits_0_and_lists_every_config_field(name: str) -> None:
    completed = w4s_jax(name, "--help")
    assert completed.returncode == 0, completed.stderr
    module = importlib.import_module(f"w4s_jax.cli.{name}")
    assert completed.stdout.startswith(f"w4s-jax {name}: ")
    assert f"default: configs/{module.DEFAULT_CONFIG}" in completed.stdout
    assert "could not load" not in completed.stdout
    config = load_config_file(CONFIGS_DIR / module.DEFAULT_CONFIG)
    missing = [path for path, _ in iter_leaves(config) if f"--config.{path}=" not in completed.stdout]
    assert missing == []
    assert "(undocumented)" not in completed.stdout


def test_top_level_help_lists_every_subcommand() -> None:
    completed = w4s_jax("--help")
    assert completed.returncode == 0
    for name, doc in SUBCOMMANDS.items():
        assert f"  {name:<9} {doc}" in completed.stdout


def test_no_subcommand_or_an_unknown_one_exits_2() -> None:
    assert w4s_jax().returncode == 2
    completed = w4s_jax("fly")
    assert completed.returncode == 2
    assert "unknown subcommand 'fly'" in completed.stderr
