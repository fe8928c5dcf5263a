"""The worker processes of the sweeps' ``--jobs N``: spawned, and gone when the sweep that started them is.

A pool worker runs its current job to the end even when its parent is killed (the pool's own shutdown never comes),
so a sweep stopped with ``kill PID`` used to leave its workers computing, and writing results, beside whatever ran
next. Here each worker watches its parent and exits as soon as it is gone. The sweeps store every finished job (or
search round) atomically, so what an exiting worker loses is the job in progress, which a rerun does again.
"""

from __future__ import annotations

import os
import threading
import time

POLL_S = 0.5


def _exit_when_orphaned(parent: int, poll_s: float) -> None:
    while True:
        if os.getppid() != parent:  # re-parented: the sweep's process is gone
            os._exit(1)
        time.sleep(poll_s)


def watch_parent(parent: int, poll_s: float = POLL_S) -> None:
    """Pool initializer: a daemon thread ends this worker once ``parent`` (the sweep's pid) is no longer its
    parent."""
    threading.Thread(target=_exit_when_orphaned, args=(parent, poll_s), daemon=True,
                     name="nnformer-watch-parent").start()


def worker_pool(jobs: int):
    """A ``ProcessPoolExecutor`` of ``jobs`` spawned workers that exit when this process does."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=watch_parent,
                               initargs=(os.getpid(),))
