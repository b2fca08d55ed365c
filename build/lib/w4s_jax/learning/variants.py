"""Workflow variants for the warm start: the built-in workflows with their knobs turned.

SmolLM2-135M rarely writes a workflow that runs, so RLAO alone has almost nothing to learn from. The
warm start first shows it replies in the project's format (a short analysis, then one python block
defining `solver`) whose workflows are the built-in ones (`w4s_jax.workflows`: chain of thought,
self-consistency, self-refine, program-aided) and variants of them: other sample counts, sampling
temperatures, executor roles, instructions and voting rules. Every variant is drawn from a seed, and
each family is equally likely, so the warm start teaches the format and a spread of strategies, good
and bad, without saying which is better: finding that out is left to the rounds that follow.

Nothing here looks at any data: the only input is the name and validation score of the archive's
best workflow, which the analysis quotes from the prompt state.
"""

from __future__ import annotations

import dataclasses
import random

FAMILIES = ("cot", "vote", "roles", "refine", "code")
ROLES = ("task solver", "math expert", "careful accountant", "math teacher", "grade-school tutor")
TEMPERATURES = (0.0, 0.3, 0.5, 0.7, 0.8, 1.0)
SAMPLE_COUNTS = (3, 5, 7, 9)
VOTING_RULES = ("majority", "numeric majority", "median")
INSTRUCTIONS = (
    "Think step by step; 'answer' is the final number.",
    "Show your work in 'reasoning'; 'answer' is one number.",
    "Answer with the final number only.",
)

# How each voting rule turns `replies` (a list of dicts) into the answer.
_VOTE = {
    "majority": ("from collections import Counter\n",
                 '    answers = [str(r.get("answer", "")).strip() for r in replies]\n'
                 '    return {"answer": Counter(answers).most_common(1)[0][0]}\n'),
    "numeric majority": ("import re\nfrom collections import Counter\n",
                         "    votes = Counter()\n"
                         "    for r in replies:\n"
                         '        found = re.findall(r"-?\\d+\\.?\\d*", str(r.get("answer")))\n'
                         '        votes[found[-1] if found else ""] += 1\n'
                         '    return {"answer": votes.most_common(1)[0][0]}\n'),
    "median": ("import re\nimport statistics\n",
               "    values = []\n"
               "    for r in replies:\n"
               '        found = re.findall(r"-?\\d+\\.?\\d*", str(r.get("answer")))\n'
               "        if found:\n"
               "            values.append(float(found[-1]))\n"
               '    return {"answer": str(statistics.median_low(values)) if values else ""}\n'),
}

_DIAGNOSIS = {
    "cot": "A precise role and instruction keep the executor's answers in the right form.",
    "vote": "A single executor call is sometimes wrong.",
    "roles": "Executors with different roles make different mistakes.",
    "refine": "A second look catches mistakes.",
    "code": "Code avoids arithmetic slips.",
}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One workflow of a family with its knobs; `source()` is the workflow, `reply()` the meta-agent reply."""

    family: str
    role: str
    temperature: float
    instruction: str
    samples: int = 1
    voting: str = ""
    roles: tuple[str, ...] = ()

    def source(self) -> str:
        return _SOURCES[self.family](self)

    def change(self) -> str:
        """What this workflow does, in one sentence of the analysis."""
        at = f"at temperature {self.temperature}"
        if self.family == "cot":
            return f"I ask the executor once as a {self.role} {at}."
        if self.family == "vote":
            return f"I sample {self.samples} answers as a {self.role} {at}; the {self.voting} wins."
        if self.family == "roles":
            return f"I ask {len(self.roles)} executors with different roles {at} and take the majority answer."
        if self.family == "refine":
            return f"A {self.role} {at} drafts, a critic corrects."
        return f"A python programmer {at} writes solution(), execute_code runs it, with one direct answer as fallback."

    def reply(self, best_name: str, best_score: str) -> str:
        """The analysis and the workflow in the project's reply format (prompts.OUTPUT_FORMAT)."""
        opening = f"The best workflow, {best_name}, scores {best_score}. " if best_name else ""
        return f"{opening}{_DIAGNOSIS[self.family]} {self.change()}\n\n```python\n{self.source()}```"


def _call(variant: Variant, samples: int, indent: str = "    ", role: str = "") -> str:
    """The keyword arguments of one call_json_format_llm call, `indent` being the call's own indentation."""
    inner = indent + "    "
    return (f'{inner}messages=[{{"role": "user", "content": task}}],\n'
            f"{inner}temperature={variant.temperature},\n"
            + (f"{inner}num_of_response={samples},\n" if samples > 1 else "")
            + f"{inner}agent_role={role or repr(variant.role)},\n"
            f'{inner}return_dict_keys=["reasoning", "answer"],\n'
            f"{inner}instructions={variant.instruction!r},\n")


def _cot(variant: Variant) -> str:
    return ("def solver(agent, task):\n"
            "    reply = agent.call_json_format_llm(\n" + _call(variant, 1) + "    )[0]\n"
            '    return {"answer": str(reply.get("answer", ""))}\n')


def _vote(variant: Variant) -> str:
    imports, tally = _VOTE[variant.voting]
    return (imports + "\n\ndef solver(agent, task):\n"
            "    replies = agent.call_json_format_llm(\n" + _call(variant, variant.samples) + "    )\n" + tally)


def _roles(variant: Variant) -> str:
    return ("from collections import Counter\n\n\n"
            "def solver(agent, task):\n"
            "    answers = []\n"
            f"    for role in {list(variant.roles)!r}:\n"
            "        reply = agent.call_json_format_llm(\n" + _call(variant, 1, "        ", role="role") + "        )[0]\n"
            '        answers.append(str(reply.get("answer", "")).strip())\n'
            '    return {"answer": Counter(answers).most_common(1)[0][0]}\n')


def _refine(variant: Variant) -> str:
    return ("def solver(agent, task):\n"
            "    draft = agent.call_json_format_llm(\n"
            + _call(dataclasses.replace(variant, instruction="Think step by step."), 1) + "    )[0]\n"
            "    review = agent.call_json_format_llm(\n"
            '        messages=[{"role": "user", "content": f"{task}\\nProposed answer: {draft.get(\'answer\')}"}],\n'
            '        agent_role="critic",\n'
            '        return_dict_keys=["answer"],\n'
            '        instructions="Correct the answer if it is wrong.",\n'
            "    )[0]\n"
            '    return {"answer": str(review.get("answer", draft.get("answer", "")))}\n')


def _code(variant: Variant) -> str:
    return ("def solver(agent, task):\n"
            "    reply = agent.call_json_format_llm(\n"
            '        messages=[{"role": "user", "content": task}],\n'
            f"        temperature={variant.temperature},\n"
            '        agent_role="python programmer",\n'
            '        return_dict_keys=["code"],\n'
            '        instructions="Write solution() returning the final number.",\n'
            "    )[0]\n"
            "    try:\n"
            '        return {"answer": str(agent.execute_code(reply.get("code", "")))}\n'
            "    except Exception:\n"
            '        answer = agent.call_json_format_llm(messages=[{"role": "user", "content": task}],\n'
            '                                            return_dict_keys=["answer"])[0]\n'
            '        return {"answer": str(answer.get("answer", ""))}\n')


_SOURCES = {"cot": _cot, "vote": _vote, "roles": _roles, "refine": _refine, "code": _code}


def draw_variant(seed: int) -> Variant:
    """The variant for one seed: a family (each equally likely), then its knobs."""
    rng = random.Random(f"warm-start-variant:{seed}")
    family = rng.choice(FAMILIES)
    role, temperature, instruction = rng.choice(ROLES), rng.choice(TEMPERATURES), rng.choice(INSTRUCTIONS)
    if family == "vote":
        return Variant(family, role, temperature, instruction, samples=rng.choice(SAMPLE_COUNTS),
                       voting=rng.choice(VOTING_RULES))
    if family == "roles":
        return Variant(family, role, temperature, instruction, roles=tuple(rng.sample(ROLES, rng.choice((3, 5)))))
    return Variant(family, role, temperature, instruction)
