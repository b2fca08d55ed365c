"""`stand_in_executor(...)`: the scripted stand-in endpoint for one run's questions, in a subprocess
on loopback (beside `simulated.simulated_executor`, the simulated executor's launcher).

Its answer table holds the gold replies (for code, the reference programs) of the run's questions:
the stand-in plays an executor that often knows the answer. Nothing from it reaches the meta-agent's
prompts or rewards beyond what the W4S loop itself reports (validation feedback only); hidden tests
are not in it. It is not a language model.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
from collections.abc import Iterator, Sequence

from w4s_jax.executor.stand_in_endpoint import spawn


@contextlib.contextmanager
def stand_in_executor(task_name: str, data_dir: str, splits: Sequence[tuple[str, int]], *, task_seed: int,
                      accuracy: float, latency_ms: float, model: str, output_dir: pathlib.Path) -> Iterator[str]:
    """Serves the stand-in over the questions of `splits` ((split, limit) pairs); yields its base URL.
    A call is answered right with probability `accuracy` (else a plausible wrong answer)."""
    from w4s_jax.tasks import get_task

    task = get_task(task_name, task_seed)
    table = {}
    for split, limit in splits:
        table.update({example.question: task.gold_reply(example) for example in task.load(split, data_dir, limit)})
    output_dir.mkdir(parents=True, exist_ok=True)
    answers = output_dir / "stand_in_answers.json"
    answers.write_text(json.dumps(table), encoding="utf-8")
    process, url = spawn(["--answers", str(answers), "--accuracy", str(accuracy), "--latency-ms", str(latency_ms),
                          "--model", model])
    try:
        yield url
    finally:
        process.kill()
        process.wait(timeout=30)
