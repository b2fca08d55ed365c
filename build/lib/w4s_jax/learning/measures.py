"""What one collection says about the meta-agent: rates and scores of its own candidates.

Computed from a collection's `trajectories.jsonl` (docs/trajectories.md), which holds only the
meta-agent's candidates: the seed workflows live in the archive, never in trajectories, so they are
excluded by construction. Each rate is a mean over candidates, and its spread the standard error
over rollouts (the rollout seeds of `w4s.seeds` are the independent units: each draws its own
candidates), so a difference between arms can be read against it.

A candidate's `score` counts 0 when it has no validation score (invalid reply, failed check), so
it is the validation score a sampled reply is worth; `mean_val_score_passed` averages only the
workflows that ran. `strategies` sorts each valid workflow by what its source asks for (a text
match on the workflow's syntax, never run here): the share of workflows that ask for several answers at a
temperature above 0, the only way to a vote that can differ from a single answer.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import pathlib
import re
import statistics
from collections.abc import Sequence
from typing import Any

from w4s_jax.trajectory import read_trajectory_file

METRICS = ("valid_rate", "check_pass_rate", "mean_val_score", "mean_val_score_passed", "best_val_score",
           "mean_reward", "beat_best_rate", "samples_at_temperature_rate")

EXECUTOR_CALLS = ("call_json_format_llm", "call_llm")


def read_candidates(path: str | pathlib.Path) -> list[dict[str, Any]]:
    """The records of one trajectory file, checked by its reader, in their JSON form (what the measures
    read; a collection with no candidates gives [])."""
    return [record.to_json() for record in read_trajectory_file(path, allow_empty=True)]


def samples_at_temperature(workflow: str) -> bool:
    """True if the workflow asks the executor for more than one answer at a temperature above 0: a
    call with num_of_response > 1, or a call inside a loop. Read from the source's syntax tree (never
    run); a keyword given as a module-level constant is resolved, an absent temperature is the
    interface's default 1.0, and a value that is any other expression is not counted."""
    try:
        tree = ast.parse(workflow)
    except SyntaxError:
        return False
    constants = {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                 and isinstance(node.value, ast.Constant) for target in node.targets if isinstance(target, ast.Name)}

    def number(node: ast.expr | None, default: float) -> float | None:
        if node is None:
            return default
        value = node.value if isinstance(node, ast.Constant) else constants.get(getattr(node, "id", None))
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    def visit(node: ast.AST, in_loop: bool) -> bool:
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in EXECUTOR_CALLS:
            keywords = {k.arg: k.value for k in node.keywords if k.arg}
            temperature = number(keywords.get("temperature"), 1.0)
            samples = number(keywords.get("num_of_response"), 1.0)
            if temperature is not None and temperature > 0 and (in_loop or (samples is not None and samples > 1)):
                return True
        inside = in_loop or isinstance(node, ast.For | ast.While | ast.comprehension)
        return any(visit(child, inside) for child in ast.iter_child_nodes(node))

    return visit(tree, False)


_VERIFY_WORDS = re.compile(r"\b(verif\w*|double[- ]check|check (the|this|that|whether|if|your)|critique|review|"
                           r"is (it|this|the answer) correct)\b", re.IGNORECASE)
_CODE_CALLS = ("execute_code", "test_on_public_test")


def strategy_flags(workflow: str) -> dict[str, bool]:
    """What a workflow's source asks for (read from its syntax, never run): `votes` (several answers
    at a temperature above 0), `runs_code` (execute_code or the public tests), `verifies` (an instruction
    to check, verify, review or critique an answer, in a string of the workflow)."""
    try:
        tree = ast.parse(workflow)
    except SyntaxError:
        return {"votes": False, "runs_code": False, "verifies": False}
    called = {getattr(node.func, "attr", "") for node in ast.walk(tree) if isinstance(node, ast.Call)}
    strings = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    return {"votes": samples_at_temperature(workflow), "runs_code": any(name in called for name in _CODE_CALLS),
            "verifies": any(_VERIFY_WORDS.search(text) for text in strings)}


def strategy_measures(records: Sequence[dict]) -> dict:
    """Per collection: shares of all candidates whose (valid, checked) workflow votes, runs code or
    verifies; the valid rate; how many distinct workflows (whitespace-insensitive) ran."""
    passed = [workflow_of(r["reply"]) for r in records if _passed(r)]
    flags = [strategy_flags(source) for source in passed]
    count = max(len(records), 1)
    distinct = {hashlib.sha256(" ".join(source.split()).encode()).hexdigest() for source in passed}
    return {"candidates": len(records), "valid_rate": sum(r["valid_action"] for r in records) / count,
            **{f"{name}_share": sum(f[name] for f in flags) / count for name in ("votes", "runs_code", "verifies")},
            "distinct_workflows": len(distinct)}


def test_case_scores(journal_path: str | pathlib.Path) -> dict[str, float]:
    """Problem id -> score of the run's one test evaluation, read from its journal (kind
    `test_evaluation`); {} when the run scored nothing on test."""
    scores: dict[str, float] = {}
    with open(journal_path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line) if line.strip() else {}
            if record.get("kind") == "test_evaluation":
                scores = {case["example_id"]: float(case["correct"]) for case in record["outcome"]["cases"]}
    return scores


def workflow_of(reply: str) -> str:
    from w4s_jax.w4s.actions import parse_action

    return parse_action(reply).workflow or ""


def _passed(record: dict) -> bool:
    return bool(record["valid_action"]) and not record["check_failed"]


def candidate_values(record: dict, best_seed_score: float) -> dict[str, float | None]:
    """Per-candidate values whose means are the metrics (None = not defined for this candidate)."""
    passed = _passed(record)
    score = float(record["val_score"]) if passed and record["val_score"] is not None else None
    return {
        "valid_rate": float(record["valid_action"]),
        "check_pass_rate": float(passed),
        "mean_val_score": score or 0.0,
        "mean_val_score_passed": score,
        "mean_reward": float(record["reward"]),
        "beat_best_rate": float(score is not None and score > best_seed_score),
        "samples_at_temperature_rate": float(passed and samples_at_temperature(workflow_of(record["reply"]))),
    }


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _standard_error(per_rollout: Sequence[float]) -> float | None:
    return statistics.stdev(per_rollout) / math.sqrt(len(per_rollout)) if len(per_rollout) > 1 else None


def collection_metrics(records: Sequence[dict], best_seed_score: float) -> dict:
    """Every metric (mean over candidates) with its standard error over rollouts, and the counts."""
    values = [candidate_values(record, best_seed_score) for record in records]
    rollouts: dict[str, list[dict]] = {}
    for record, value in zip(records, values):
        rollouts.setdefault(record["rollout"], []).append(value)
    out: dict = {"candidates": len(records), "rollouts": len(rollouts),
                 "passed": sum(_passed(r) for r in records), "best_seed_score": best_seed_score}
    for name in METRICS:
        if name == "best_val_score":
            scores = [v["mean_val_score_passed"] for v in values if v["mean_val_score_passed"] is not None]
            out[name] = max(scores) if scores else None
            out[f"{name}_se"] = None
            continue
        out[name] = _mean([v[name] for v in values if v[name] is not None])
        per_rollout = [m for m in (_mean([v[name] for v in group if v[name] is not None])
                                   for group in rollouts.values()) if m is not None]
        out[f"{name}_se"] = _standard_error(per_rollout)
    return out


def best_seed_score(collection_dir: str | pathlib.Path) -> float:
    """The best validation score among the seed workflows of a collection's archives (the score a
    candidate must beat for reward 1), read from the archive index files."""
    scores = []
    for index in pathlib.Path(collection_dir).glob("archive/*/index.json"):
        entries = json.loads(index.read_text(encoding="utf-8"))["entries"]
        scores += [float(e["val_score"]) for e in entries if str(e.get("origin", "")).startswith("seed:")]
    if not scores:
        raise ValueError(f"{collection_dir}: no seed workflow in any archive/*/index.json")
    return max(scores)
