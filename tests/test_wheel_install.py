"""The package as a user installs it: a real wheel, installed into a folder of its own, run from
outside any checkout, finds its shipped config files (`configs/`, installed as `w4s_jax/configs/`)."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> pathlib.Path:
    """Builds the wheel from a copy of the sources and installs it (no dependencies) into a folder."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("setup.py", "README.md", "pyproject.toml"):
        shutil.copy(REPO_ROOT / name, source / name)
    for folder in ("w4s_jax", "configs"):
        shutil.copytree(REPO_ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"), str(source)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (work / "dist").glob("w4s_jax-*.whl")
    site = work / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return site


def run_installed(site: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    """The installed console script, from a folder that holds no checkout (nor the install)."""
    elsewhere = site.parent / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, str(site / "bin" / "w4s-jax"), *args], capture_output=True,
                          text=True, timeout=120, cwd=elsewhere, env=env)


def test_the_wheel_ships_every_config_file(installed: pathlib.Path) -> None:
    shipped = sorted(path.name for path in (installed / "w4s_jax" / "configs").iterdir() if path.is_file())
    in_checkout = sorted(path.name for path in (REPO_ROOT / "configs").iterdir() if path.is_file())
    assert shipped == in_checkout


@pytest.mark.parametrize("name", ["optimize", "train"])
def test_an_installed_subcommand_finds_its_default_config(installed: pathlib.Path, name: str) -> None:
    completed = run_installed(installed, name, "--help")
    assert completed.returncode == 0, completed.stderr
    assert f"default: {installed / 'w4s_jax' / 'configs' / name}.py" in completed.stdout
    assert "could not load" not in completed.stdout and "--config.output_dir=" in completed.stdout


def test_an_installed_subcommand_runs_a_shipped_config_with_its_argument(installed: pathlib.Path) -> None:
    """`base.py:HARDWARE,SIZE` from the install: the preset applies (the mesh check then names it)."""
    config = installed / "w4s_jax" / "configs" / "base.py"
    completed = run_installed(installed, "train", f"--config={config}:v5p-8,7b", "--config.output_dir=out")
    assert completed.returncode == 2
    assert "configuration error: mesh: mesh (data=1, fsdp=4, tensor=1): product 4 does not match" in completed.stderr


def test_the_wheel_ships_the_gsm8k_pools_with_their_license(installed: pathlib.Path) -> None:
    """`task.data_dir=package:w4s-jax` (the learning experiment's data) works from the install alone."""
    shipped = installed / "w4s_jax" / "tasks" / "package_data"
    assert sorted(path.name for path in shipped.iterdir()) == [
        "LICENSE-GSM8K", "README.md", "gsm8k_test.jsonl", "gsm8k_train.jsonl", "gsm8k_validate.jsonl"]
    code = ("from w4s_jax.tasks import get_task; task = get_task('gsm8k'); "
            "pools = [task.load(split, 'package:w4s-jax') for split in ('train', 'validate', 'test')]; "
            "print(*[len(pool) for pool in pools], pools[1][0].answer)")
    elsewhere = installed.parent / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                               cwd=elsewhere, env={**os.environ, "PYTHONPATH": str(installed)})
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["80", "50", "200", "72"]
