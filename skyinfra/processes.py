"""Process lifetimes: a helper process must not outlive the process that started it."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process as soon as its parent dies, even by SIGKILL.

    Called first thing in a ``multiprocessing`` child (a worker's fit process): without it, a fit
    whose worker was killed would go on running, orphaned, until it finishes or hangs forever.
    Linux only (``prctl(PR_SET_PDEATHSIG)``); elsewhere a no-op.
    """
    if sys.platform != "linux":
        return
    parent = multiprocessing.parent_process()
    expected = parent.pid if parent is not None else os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != expected:  # the parent died before the request took effect
        os._exit(1)
