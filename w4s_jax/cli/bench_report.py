"""Runs the benchmark modules of `benchmarks/` and writes one JSON report plus a markdown table.

A number without the machine, the library versions and the commit it was measured on cannot be
compared, so every report carries all three. Each benchmark runs in its own Python process: a crash,
a hang (time limit) or an accelerator left in a bad state by one becomes a failure row and the others
still run.

A benchmark module is any `benchmarks/<name>.py` not starting with "_" that defines
`run(quick: bool = False) -> dict` returning JSON-safe values. Its table goes in the report from the
result's `"markdown"` (a ready markdown table), or `"rows"`: a list of dicts (one table row each, keys
are the columns) or a list of markdown row lines under the result's `"header"` lines.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import importlib.util
import json
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

import psutil

SCHEMA = "w4s-bench/1"
VERSIONED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "numpy", "transformers", "torch", "libtpu")
BENCH_PREFIX = "bench_"
# The /proc/cpuinfo flags that decide which matmul kernels the libraries pick.
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_tile", "amx_bf16")


def benchmark_name(path: pathlib.Path) -> str:
    """`bench_forward.py` -> `forward`; other modules (`aot_table.py`) keep their stem."""
    return path.stem.removeprefix(BENCH_PREFIX)


def discover(benchmarks_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Benchmark name -> module path, sorted by name."""
    paths = sorted(p for p in pathlib.Path(benchmarks_dir).glob("*.py") if not p.name.startswith("_"))
    return {benchmark_name(p): p for p in paths}


def select(available: dict[str, pathlib.Path], wanted: str) -> dict[str, pathlib.Path]:
    """The benchmarks named in a comma-separated `wanted` ('all' = every one); unknown names raise."""
    if wanted.strip() in ("", "all"):
        return dict(available)
    names = [name.strip().removeprefix(BENCH_PREFIX) for name in wanted.split(",") if name.strip()]
    unknown = [name for name in names if name not in available]
    if unknown:
        raise KeyError(f"unknown benchmark(s) {unknown}; available: {sorted(available)}")
    return {name: available[name] for name in names}


def cpu_model() -> str:
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: ")) and ":" in line:
                value = line.split(":", 1)[1].strip()
                if value and not value.isdigit():
                    return value
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU feature flags /proc/cpuinfo lists (empty where there is none)."""
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("flags") and ":" in line:
                return set(line.split(":", 1)[1].split())
    return set()


def cpu_vector_features(flags: set[str] | None = None) -> str:
    """The vector features that decide which matmul kernels run: 'avx2 fma avx512f avx512_bf16 ...'."""
    flags = cpu_flags() if flags is None else flags
    return " ".join(flag for flag in VECTOR_FLAGS if flag in flags) or platform.machine()


def copy_bandwidth(mib: int = 512, repeats: int = 5) -> float:
    """Bytes moved per second (read + write) by a numpy copy of a `mib` MiB float32 array (STREAM's
    convention), median of `repeats` after one warm-up copy."""
    import numpy as np

    src = np.ones(mib * 2**20 // 4, np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - start)
    return 2 * src.nbytes / sorted(times)[len(times) // 2]


def measured_machine(quick: bool = False) -> dict[str, object]:
    """What a CPU ratio needs beside it: the CPU model and vector features, the float32 matmul peak
    XLA:CPU reaches here ([2048, 2048]^2, best of 5) and the copy bandwidth, both measured now, and
    the 1-minute load average. Ratios move with these (a machine whose matmul peak is 2.5x another's
    gives different ratios), so a benchmark measures them in its own run and prints them beside its
    ratios (`machine_line`)."""
    from w4s_jax.rlao.flops import measured_cpu_peak  # imports JAX: only when measuring

    return {
        "cpu_model": cpu_model(),
        "cpu_count": psutil.cpu_count(logical=True),
        "cpu_vector_features": cpu_vector_features(),
        "cpu_peak_gflops": round(measured_cpu_peak() / 1e9, 1),
        "copy_bandwidth_gb_per_s": round(copy_bandwidth(128 if quick else 512) / 1e9, 1),
        "load_average_1m": round(psutil.getloadavg()[0], 2),
    }


def machine_line(machine: dict) -> str:
    """One line naming the machine a benchmark's ratios were measured on (from `measured_machine`)."""
    line = (f"CPU: {machine['cpu_model']}, {machine['cpu_count']} cores ({machine['cpu_vector_features']}); "
            f"float32 matmul peak {machine['cpu_peak_gflops']} GFLOP/s (XLA:CPU), copy bandwidth "
            f"{machine['copy_bandwidth_gb_per_s']} GB/s, measured in this run; 1-minute load average "
            f"{machine['load_average_1m']}")
    if "load_average_1m_after" in machine:
        line += f" before, {machine['load_average_1m_after']} after"
    return line + "."


def accelerator_info() -> dict[str, object]:
    """What JAX sees: backend, device kind and counts (local and across all hosts)."""
    try:
        import jax

        devices = jax.devices()
        stats = devices[0].memory_stats() or {}  # None on CPU
        info = {
            "backend": jax.default_backend(),
            "device_kind": devices[0].device_kind,
            "device_count": jax.device_count(),
            "local_device_count": jax.local_device_count(),
            "process_count": jax.process_count(),
        }
        if "bytes_limit" in stats:
            info["memory_gib_per_device"] = round(stats["bytes_limit"] / 2**30, 1)
        return info
    except Exception as error:  # a broken accelerator runtime is itself worth reporting
        return {"backend": "unavailable", "error": f"{type(error).__name__}: {error}"}


def machine_info() -> dict[str, object]:
    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_vector_features": cpu_vector_features(),
        "cpu_cores_logical": psutil.cpu_count(logical=True),
        "cpu_cores_physical": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "accelerator": accelerator_info(),
    }


def versions() -> dict[str, str]:
    """Python and the installed versions of the numerical stack (absent packages are left out)."""
    found = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def git_info(repo_dir: pathlib.Path) -> dict[str, object]:
    """Commit and whether the work tree had uncommitted changes ('unknown' outside a checkout)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo_dir), *args], capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def run_isolated(path: pathlib.Path, quick: bool, timeout_s: float) -> dict[str, object]:
    """Runs one benchmark module in a child process; returns its row (status ok or failed)."""
    name = benchmark_name(path)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="w4s-bench-") as scratch:
        result_path = pathlib.Path(scratch) / "result.json"
        command = [sys.executable, "-m", "w4s_jax.cli.bench_report", str(path), str(result_path), "quick" if quick else "full"]
        try:
            child = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return {"name": name, "status": "failed", "wall_s": round(time.perf_counter() - start, 3),
                    "error": f"timed out after {timeout_s:g} s"}
        wall_s = round(time.perf_counter() - start, 3)
        if child.returncode != 0 or not result_path.is_file():
            tail = (child.stderr or child.stdout).strip().splitlines()[-20:]
            last = tail[-1] if tail else f"exit status {child.returncode}"
            return {"name": name, "status": "failed", "wall_s": wall_s, "error": last, "log_tail": "\n".join(tail)}
        return {"name": name, "status": "ok", "wall_s": wall_s, "result": json.loads(result_path.read_text())}


def run_module(path: pathlib.Path, quick: bool) -> dict:
    """Imports `path` (its directory on sys.path, so benchmarks may share `_helpers`) and calls run()."""
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"w4s_benchmark_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise TypeError(f"{path.name} defines no run(quick: bool = False) -> dict")
    result = module.run(quick=quick)
    if not isinstance(result, dict):
        raise TypeError(f"{path.name}: run() returned {type(result).__name__}, expected a dict")
    return result


def markdown_table(rows: Sequence[dict]) -> str:
    """A markdown table whose columns are the union of the rows' keys, in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    cell = lambda value: str(value).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def benchmark_section(row: dict) -> str:
    """The markdown of one benchmark: its own table, or why it failed."""
    if row["status"] != "ok":
        return f"### {row['name']}\n\nFAILED: {row['error']}\n"
    result = row["result"]
    rows = result.get("rows")
    if isinstance(result.get("markdown"), str):
        body = result["markdown"].strip()
    elif isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
        body = markdown_table(rows)
    elif isinstance(rows, list) and rows and all(isinstance(r, str) for r in rows):
        body = "\n".join([result.get("header", "").strip(), *rows]).strip()
    else:
        body = "```json\n" + json.dumps(result, indent=1, sort_keys=True)[:4000] + "\n```"
    if isinstance(result.get("machine"), dict) and "markdown" not in result:
        body = machine_line(result["machine"]) + "\n\n" + body
    return f"### {row['name']}\n\n{body}\n"


def render_markdown(report: dict) -> str:
    machine, accelerator = report["machine"], report["machine"]["accelerator"]
    measured = machine.get("measured", {})
    accel = (f"{accelerator.get('device_count')} x {accelerator.get('device_kind')} ({accelerator.get('backend')})"
             if "device_kind" in accelerator else accelerator.get("error", "none"))
    if "memory_gib_per_device" in accelerator:
        accel += f", {accelerator['memory_gib_per_device']} GiB each"
    commit = report["git"]["commit"] + (" (uncommitted changes)" if report["git"]["dirty"] else "")
    lines = [
        f"# w4s-jax benchmarks ({'quick' if report['quick'] else 'full'}), {report['created']}",
        "",
        markdown_table([
            {"machine": "CPU", "value": f"{machine['cpu_model']}, {machine['cpu_cores_physical']} cores / "
                                        f"{machine['cpu_cores_logical']} threads"},
            {"machine": "CPU vector features", "value": machine.get("cpu_vector_features", "")},
            {"machine": "measured", "value": (f"float32 matmul peak {measured['cpu_peak_gflops']} GFLOP/s (XLA:CPU), copy "
                                              f"bandwidth {measured['copy_bandwidth_gb_per_s']} GB/s, 1-minute load "
                                              f"average {measured['load_average_1m']} (after the benchmarks)")
                                             if "cpu_peak_gflops" in measured else measured.get("error", "")},
            {"machine": "memory", "value": f"{machine['memory_gib']} GiB"},
            {"machine": "accelerator", "value": accel},
            {"machine": "versions", "value": ", ".join(f"{k} {v}" for k, v in report["versions"].items())},
            {"machine": "commit", "value": commit},
        ]),
        "",
        markdown_table([
            {"benchmark": row["name"], "status": row["status"], "wall s": row["wall_s"],
             "note": row.get("error", "")} for row in report["benchmarks"]
        ]),
        "",
    ]
    lines += [benchmark_section(row) for row in report["benchmarks"]]
    return "\n".join(lines)


def build_report(benchmarks: dict[str, pathlib.Path], *, quick: bool, timeout_s: float,
                 repo_dir: pathlib.Path, config: dict | None = None,
                 progress: Callable[[str], None] = lambda message: None) -> dict:
    # Benchmarks first: the machine probe imports JAX, and a TPU held by this process would be
    # unavailable to the children.
    rows = []
    for name, path in benchmarks.items():
        progress(f"running {name}")
        rows.append(run_isolated(path, quick, timeout_s))
        progress(f"{name}: {rows[-1]['status']} in {rows[-1]['wall_s']} s")
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine_info() | {"measured": _measured_or_error(quick)},
        "versions": versions(),
        "git": git_info(repo_dir),
        "config": config or {},
        "benchmarks": rows,
    }


def _measured_or_error(quick: bool) -> dict[str, object]:
    try:
        return measured_machine(quick)
    except Exception as error:  # a report without the peak still beats no report
        return {"error": f"{type(error).__name__}: {error}"}


def write_report(report: dict, output_dir: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Writes bench.json and bench.md under `output_dir`; returns their paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = output_dir / "bench.json", output_dir / "bench.md"
    json_path.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    md_path.write_text(render_markdown(report))
    return json_path, md_path


def _child_main(argv: Sequence[str]) -> None:
    """`python -m w4s_jax.cli.bench_report MODULE RESULT_JSON quick|full`: the isolated child of run_isolated."""
    module_path, result_path, mode = argv
    result = _with_load_after(run_module(pathlib.Path(module_path), quick=mode == "quick"))
    pathlib.Path(result_path).write_text(json.dumps(result))


def _with_load_after(result: dict) -> dict:
    """Adds the 1-minute load average at the end of the run to a result's `machine` (if it has one)."""
    if isinstance(result.get("machine"), dict):
        result["machine"]["load_average_1m_after"] = round(psutil.getloadavg()[0], 2)
    return result


def script_main(run: Callable[..., dict], doc: str, quick_help: str = "small shapes, few repeats") -> None:
    """`python benchmarks/X.py [--quick]`: runs one benchmark and prints its table and other results."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    outcome = _with_load_after(run(quick=parser.parse_args().quick))
    if isinstance(outcome.get("machine"), dict):
        print(machine_line(outcome["machine"]))
    print(markdown_table(outcome["rows"]))
    print(json.dumps({k: v for k, v in outcome.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    _child_main(sys.argv[1:])
