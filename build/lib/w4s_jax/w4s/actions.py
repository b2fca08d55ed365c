"""Turning a meta-agent reply into an action: its analysis and the workflow source it proposes.

The workflow is the *last* fenced python block that defines `solver`: replies often quote helper
snippets or earlier workflows first, and the paper's meta-agent puts its final answer last. The source
is only parsed (`ast.parse`) in this process, never executed: workflow code is untrusted and runs in
the sandbox alone.
"""

from __future__ import annotations

import ast
import dataclasses
import re

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Action:
    """One parsed reply. `workflow` is None for an invalid action, with `invalid_reason` saying why."""

    reply: str
    analysis: str
    workflow: str | None
    invalid_reason: str = ""

    @property
    def valid(self) -> bool:
        return self.workflow is not None


def _defines_solver(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "solver" for node in tree.body
    )


def parse_action(reply: str) -> Action:
    """The last python block defining a top-level `solver` that parses; else an invalid action."""
    if not reply.strip():
        return Action(reply, "", None, "empty reply (the meta-agent produced no text; is its prompt too long?)")
    blocks = list(_FENCE.finditer(reply))
    if not blocks:
        return Action(reply, reply.strip(), None, "no fenced python block in the reply")
    syntax_error = ""
    for match in reversed(blocks):
        source = match.group(1).strip("\n")
        try:
            tree = ast.parse(source)
        except SyntaxError as error:
            if "def solver" in source and not syntax_error:
                syntax_error = f"the python block defining solver does not parse: {error.msg} (line {error.lineno})"
            continue
        if _defines_solver(tree):
            analysis = reply[: match.start()].strip()
            return Action(reply, analysis, source + "\n")
    if syntax_error:
        return Action(reply, reply.strip(), None, syntax_error)
    return Action(reply, reply.strip(), None, "no python block defines a top-level function solver(agent, task)")
