"""One rollout of the W4S MDP for one task and seed: episodes of turns of m candidates each.

A rollout seeds the archive with the built-in workflows, then runs episodes. An episode starts a
fresh conversation from the archive (system + first user message) and grows it for a window of
turns: each turn samples m candidate replies, checks each workflow on a validation sample (with up
to `max_repairs` repairs in the candidate's own branch of the conversation), evaluates it on the
whole validation split, rewards it against the best score so far and the previous turn's workflow,
and keeps the best candidate and its feedback in the conversation.

Everything here is deterministic given the replies and evaluation results, which come from the
journal on a rerun: that is what makes a killed run resume to the same result.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from w4s_jax.sandbox import workflow_hash
from w4s_jax.w4s import prompts
from w4s_jax.w4s.actions import Action, parse_action
from w4s_jax.w4s.archive import Archive
from w4s_jax.w4s.concurrency import gather_or_cancel
from w4s_jax.w4s.evaluations import JournaledEvaluations
from w4s_jax.w4s.feedback import feedback_text
from w4s_jax.w4s.generation_batcher import GenerationBatcher
from w4s_jax.w4s.journal import Journal
from w4s_jax.w4s.outcomes import EvalOutcome
from w4s_jax.w4s.settings import W4SSettings


@dataclasses.dataclass
class Candidate:
    """One candidate of one turn, after its check, repairs and evaluation."""

    index: int
    first_reply: str
    reply: str  # the reply whose workflow was evaluated (after repairs), else the first reply
    action: Action
    repairs: int = 0
    # The messages between the turn's state and `reply`: for a repaired reply, the earlier replies and
    # the repair requests that produced it (its training context); empty when no repair was needed.
    repair_branch: list[dict[str, str]] = dataclasses.field(default_factory=list)
    outcome: EvalOutcome | None = None
    check_failed: bool = False
    note: str = ""
    reward: float = 0.0
    selected: bool = False

    @property
    def score(self) -> float | None:
        """Validation score (the check's score if it failed every repair); None = invalid action."""
        return self.outcome.score if self.outcome is not None else None

    @property
    def evaluated(self) -> bool:
        """Ran on the whole validation split: may be selected and enters the archive."""
        return self.outcome is not None and not self.check_failed


@dataclasses.dataclass
class TurnLog:
    episode: int
    turn: int
    iteration: int
    state: list[dict[str, str]]
    candidates: list[Candidate]
    best_before: float
    previous_before: float
    chosen_feedback: str = ""  # feedback on the selected candidate ('' when none could be selected)


def derive_seed(*parts: object) -> int:
    """A 31-bit sampling seed for one (rollout, episode, turn, candidate, repair)."""
    digest = hashlib.sha256("/".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class Rollout:
    """Runs the MDP for one (task, seed) and records turns, archive and journal entries."""

    def __init__(self, *, rollout_id: str, task_name: str, task: Any, seed: int, val_examples: Sequence[Any],
                 seed_workflows: Sequence[tuple[str, str]], settings: W4SSettings, batcher: GenerationBatcher,
                 evaluations: JournaledEvaluations, journal: Journal, archive: Archive,
                 on_turn: Callable[[Rollout, TurnLog], None] = lambda rollout, turn: None) -> None:
        if not val_examples:
            raise ValueError(f"task {task_name!r}: no validation examples to evaluate workflows on")
        if not seed_workflows:
            raise ValueError(f"task {task_name!r}: no seed workflows for the archive")
        self.rollout_id = rollout_id
        self.task_name = task_name
        self.task = task
        self.seed = seed
        self.val_examples = list(val_examples)
        self.check_examples = self.val_examples[: max(1, settings.check_samples)]
        self.seed_workflows = list(seed_workflows)
        self.settings = settings
        self.batcher = batcher
        self.evaluations = evaluations
        self.journal = journal
        self.archive = archive
        self.on_turn = on_turn
        self.turns: list[TurnLog] = []
        self.iteration = 0
        self.stopped_reason = ""

    # ------------------------------------------------------------------ evaluation helpers

    async def _validate(self, source: str, examples: Sequence[Any]) -> EvalOutcome:
        return await self.evaluations.run(self.task_name, self.task, "validate", source, examples)

    def _feedback(self, outcome: EvalOutcome, source: str, previous: float | None, best: float | None) -> str:
        seed = derive_seed(self.rollout_id, "feedback", workflow_hash(source))
        return feedback_text(outcome, previous, best, self.settings.feedback_cases, seed)

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """The whole rollout; a participant of the batcher (the runner starts it with `batcher.gather`)."""
        latest = await self._seed_archive()
        episode = 0
        while self.iteration < self.settings.max_iterations:
            latest = await self._episode(episode, latest)
            episode += 1

    async def _seed_archive(self) -> tuple[float, str]:
        """Scores the seed workflows into the archive; returns (score, feedback) of the last one."""
        outcomes = await gather_or_cancel([self._validate(source, self.val_examples)
                                           for _, source in self.seed_workflows])
        feedback = ""
        for (name, source), outcome in zip(self.seed_workflows, outcomes):
            feedback = self._feedback(outcome, source, None, None)
            self.archive.add(source, workflow_hash(source), f"seed:{name}", outcome.score, 0, feedback)
        return outcomes[-1].score, feedback

    async def _episode(self, episode: int, latest: tuple[float, str]) -> tuple[float, str]:
        """Runs one episode from `latest` = (score, feedback) of the last chosen workflow; returns the new one."""
        previous, latest_feedback = latest
        messages = prompts.initial_messages(self.task.description, self.task.worked_example,
                                            self.archive.top(self.settings.archive_in_prompt), latest_feedback,
                                            self.settings.design_principles)
        for turn in range(self.settings.turns_per_episode):
            if self.iteration >= self.settings.max_iterations:
                break
            log = await self._turn(episode, turn, list(messages), previous)
            if log.chosen_feedback:
                chosen = next(c for c in log.candidates if c.selected)
                messages += [{"role": "assistant", "content": chosen.reply},
                             {"role": "user", "content": prompts.next_turn_message(log.chosen_feedback)}]
                previous, latest_feedback = chosen.score, log.chosen_feedback
            self.iteration += 1
        return previous, latest_feedback

    async def _turn(self, episode: int, turn: int, state: list[dict[str, str]], previous: float) -> TurnLog:
        best_before = self.archive.best_score()
        candidates = await self.batcher.gather(
            [self._candidate(episode, turn, c, state) for c in range(self.settings.candidates_per_turn)],
            handing_over=True)  # this rollout waits on its candidates; only they generate
        rule = self.settings.reward_rule
        for candidate in candidates:
            candidate.reward = rule.reward(candidate.score, best_before, previous)
        evaluated = [c for c in candidates if c.evaluated]
        if evaluated:
            max(evaluated, key=lambda c: (c.score, -c.index)).selected = True
        log = TurnLog(episode, turn, self.iteration, state, list(candidates), best_before, previous)
        for candidate in candidates:
            if candidate.evaluated:
                source = candidate.action.workflow
                feedback = self._feedback(candidate.outcome, source, previous, best_before)
                self.archive.add(source, workflow_hash(source), f"e{episode}t{turn}c{candidate.index}",
                                 candidate.score, self.iteration, feedback)
                if candidate.selected:
                    log.chosen_feedback = feedback
        for candidate in candidates:
            self.journal.put(
                "candidate", f"{self.rollout_id}/e{episode}/t{turn}/c{candidate.index}",
                rollout=self.rollout_id, task=self.task_name, episode=episode, turn=turn,
                iteration=self.iteration, candidate=candidate.index, valid_action=candidate.action.valid,
                val_score=candidate.score, reward=candidate.reward, selected=candidate.selected,
                repairs=candidate.repairs, check_failed=candidate.check_failed, note=candidate.note,
                workflow_hash=workflow_hash(candidate.action.workflow) if candidate.action.valid else "")
        self.turns.append(log)
        self.on_turn(self, log)
        return log

    async def _candidate(self, episode: int, turn: int, index: int, state: list[dict[str, str]]) -> Candidate:
        """One candidate: a participant of the batcher (its rollout hands over to it in `_turn`)."""
        key = f"{self.rollout_id}/e{episode}/t{turn}/c{index}"
        reply = await self.batcher.generate(f"{key}/r0", state, derive_seed(self.rollout_id, episode, turn, index, 0))
        action = parse_action(reply)
        candidate = Candidate(index, reply, reply, action)
        if not action.valid:
            candidate.note = f"invalid action: {action.invalid_reason}"
            self.journal.put("invalid_action", key, rollout=self.rollout_id, reason=action.invalid_reason,
                             reply=reply)
            return candidate
        await self._check_and_repair(candidate, key, state, episode, turn)
        if not candidate.check_failed:
            candidate.outcome = await self._validate(candidate.action.workflow, self.val_examples)
        return candidate

    async def _check_and_repair(self, candidate: Candidate, key: str, state: list[dict[str, str]],
                                episode: int, turn: int) -> None:
        """Checks on `check_samples` validation samples; on an error asks for a fix, up to max_repairs.

        The repair conversation branches off the turn's state; a repaired reply that parses becomes the
        candidate's reply, and the branch that produced it its `repair_branch`.
        """
        branch = list(state)
        last_reply = candidate.reply
        while True:
            check = await self._validate(candidate.action.workflow, self.check_examples)
            failure = check.first_error
            if failure is None:
                return
            if candidate.repairs >= self.settings.max_repairs:
                candidate.outcome = check
                candidate.check_failed = True
                candidate.note = (f"check failed after {candidate.repairs} repairs: {failure.error}"
                                  + (f" (line: {failure.error_line.strip()})" if failure.error_line else ""))
                self.journal.put("check_failed", key, rollout=self.rollout_id, error=failure.error,
                                 line=failure.error_line, repairs=candidate.repairs)
                return
            branch += [{"role": "assistant", "content": last_reply},
                       {"role": "user", "content": prompts.repair_message(failure.error, failure.error_line)}]
            candidate.repairs += 1
            last_reply = await self.batcher.generate(
                f"{key}/r{candidate.repairs}", branch,
                derive_seed(self.rollout_id, episode, turn, candidate.index, candidate.repairs))
            repaired = parse_action(last_reply)
            if repaired.valid:
                candidate.action, candidate.reply = repaired, last_reply
                candidate.repair_branch = branch[len(state):]
