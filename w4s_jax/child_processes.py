"""Local servers a command starts (the stand-in and simulated executors, `w4s-jax serve`) must not
outlive it: a lab kills runs with SIGKILL, whose `finally` blocks never run, and an orphaned server
keeps its port, memory and (for `serve`) a model. Standard library only: every layer may import it."""

from __future__ import annotations

import os
import sys


def dying_with_this_process(command: list[str]) -> list[str]:
    """`command` behind a small Python shim that asks the kernel to SIGKILL it when the thread that
    started it exits (prctl PR_SET_PDEATHSIG survives exec), then execs it: a command killed with
    SIGKILL leaves no server behind. A shim rather than `preexec_fn`, which would run Python in a
    forked copy of a multithreaded (JAX) process. Start it from a thread that lives as long as the
    server should (the main thread)."""
    shim = ("import ctypes, os, sys; ctypes.CDLL(None).prctl(1, 9); "  # PR_SET_PDEATHSIG, SIGKILL
            "os.getppid() == int(sys.argv[1]) or sys.exit('parent gone'); os.execv(sys.argv[2], sys.argv[2:])")
    return [sys.executable, "-c", shim, str(os.getpid()), *command]
