"""The meta-agent's prompts: its role, the workflow interface, design principles, the task, the archive.

Written for this project (not taken from the reference release). The state of the MDP is the
conversation these functions build: a system message, one first user message (interface, principles,
task with a worked example, archive of scored workflows, feedback on the latest one, output format),
then per kept turn the chosen reply and the feedback on it.
"""

from __future__ import annotations

import dataclasses

SYSTEM_PROMPT = (
    "You design workflows for a strong language model. You never solve the tasks yourself: you write "
    "Python code that solves them by calling the strong model (the executor) through an `agent` object. "
    "Each workflow you write is run on validation questions and you are told how well it did. Study what "
    "worked and what failed, then write a better workflow."
)

INTERFACE = '''\
## The workflow interface

A workflow is one Python function:

```python
def solver(agent, task: str) -> dict:
    ...
    return {"answer": final_answer}
```

`task` is the question as plain text. Return a dict whose key "answer" holds the final answer in the
form the task asks for. Plain Python and the standard library are available; the executor is reached
only through `agent`:

All helpers take keyword arguments:

- `agent.call_json_format_llm(messages=..., temperature=..., num_of_response=..., agent_role=...,
  return_dict_keys=[...], instructions=...)` sends `messages` (a list of {"role": ..., "content": ...}
  dicts) to the executor and returns a list of `num_of_response` dicts, each with exactly the keys in
  `return_dict_keys` (a key the model left out reads "NO <key> IN DICTIONARY"). Ask for a "thinking"
  key before the "answer" key to get reasoning.
- `agent.call_llm(messages=..., temperature=..., num_of_response=..., agent_role=..., instructions=...)`
  returns a list of `num_of_response` plain-text replies.
- `agent.execute_code(code)` runs Python source that defines `solution()` in a separate process and
  returns what `solution()` returns. Use it to let the executor compute exactly.
- `agent.extract_answer_str(text)` returns the last \\boxed{...} of a text, else its last number, else
  its last sentence.
- For coding tasks: `agent.extract_code_block(response, entry_point)` takes the function out of a
  reply, `agent.exec_test(solution, entry_point)` runs the public tests of the question ("no error"
  or the failures), and `agent.test_on_public_test(task, solution, entry_point)` also asks the
  executor to repair a failing solution, returning a dict with keys "result" and "solution".

`agent_role` describes who the executor plays ("math expert", "critic", ...); `instructions` adds text
to its system prompt. Every executor call costs money: spend calls where they raise accuracy.'''

PRINCIPLES = """\
## How to design

- Analyse first: read the feedback, find why answers were wrong (reasoning, arithmetic, answer format,
  crashes) and say what your new workflow changes to fix that.
- Strategies that often help: step-by-step reasoning (chain of thought); sampling several answers and
  taking a majority vote (self-consistency); a debate between executors with different roles;
  decomposing the question into sub-questions; reflecting on a draft and refining it; writing code
  and running it with `agent.execute_code`; a final check that the answer has the required format.
- Combine and adapt: a good workflow of the archive is a strong starting point; change one idea at a
  time so that the score tells you what helped.
- Keep it robust: handle missing keys and unexpected replies so that the workflow always returns an
  answer; never hard-code answers to the questions shown to you."""

OUTPUT_FORMAT = """\
## Reply format

First your analysis in a few sentences. Then the complete new workflow in one fenced block:

```python
def solver(agent, task: str) -> dict:
    ...
```

The last python block of your reply must define `solver`; it is the workflow that will be run."""


@dataclasses.dataclass(frozen=True)
class ArchiveView:
    """An archive workflow as shown in a prompt."""

    name: str
    source: str
    val_score: float


def format_score(score: float) -> str:
    return f"{score:.3f}"


def archive_text(entries: list[ArchiveView]) -> str:
    if not entries:
        return "## Archive\n\nNo workflow has been scored yet."
    parts = ["## Archive\n\nEarlier workflows and their validation scores (higher is better):"]
    for entry in entries:
        parts.append(
            f"### {entry.name} (validation score {format_score(entry.val_score)})\n\n"
            f"```python\n{entry.source.rstrip()}\n```"
        )
    return "\n\n".join(parts)


def first_user_message(task_description: str, worked_example: str, archive: list[ArchiveView],
                       latest_feedback: str, principles: bool = True) -> str:
    """The episode's first user message; the feedback covers only the latest archive workflow.
    `principles=False` leaves out the design principles (`w4s.design_principles`: a shorter prompt)."""
    parts = [
        INTERFACE,
        *([PRINCIPLES] if principles else []),
        f"## The task\n\n{task_description.strip()}\n\n### A worked example\n\n{worked_example.strip()}",
        archive_text(archive),
    ]
    if latest_feedback:
        parts.append(f"## Feedback on the latest workflow\n\n{latest_feedback.strip()}")
    parts.append(OUTPUT_FORMAT)
    return "\n\n".join(parts)


def initial_messages(task_description: str, worked_example: str, archive: list[ArchiveView],
                     latest_feedback: str, principles: bool = True) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": first_user_message(task_description, worked_example, archive, latest_feedback,
                                                       principles)},
    ]


def next_turn_message(feedback: str) -> str:
    """User message after a kept reply: its feedback and the request for the next workflow."""
    return (
        f"{feedback.strip()}\n\nAnalyse this feedback, then write an improved workflow. Reply with your "
        "analysis and one python block defining `solver`, as before."
    )


def repair_message(error: str, line: str) -> str:
    """User message asking for a fix after the workflow failed on a check sample."""
    where = f"\nThe failing line:\n    {line.strip()}" if line.strip() else ""
    return (
        f"Your workflow failed on a validation question with this error:\n{error.strip()}{where}\n\n"
        "Fix the error and reply with the complete corrected workflow in one python block defining `solver`."
    )
