"""The one engine every sweep runs on: the jobs not yet stored, run in this process or in a pool of worker processes,
each result stored the moment it arrives, a progress bar, and a clean stop on Ctrl-C or SIGTERM.

The accuracy and HELP latency tables (:mod:`.sweep`), the few-shot protocol (:mod:`.fewshot`), whole networks
(:mod:`.networks`) and the search comparison (:mod:`.search_sweep`) differ only in what a job is and what it
returns; they hand the engine a list of jobs, a function that runs one, and (except the searches, which write their
own histories) a :class:`RunStore`.

Stopping. The CLI turns SIGTERM into the same ``KeyboardInterrupt`` as Ctrl-C. On either, the engine submits
nothing more, stores every result that has already arrived, kills its workers (a worker ignores both signals, so a
terminal's Ctrl-C to the whole process group reaches only the parent, which decides), and raises
:class:`Interrupted`, which says how many jobs are stored; the job in progress is lost and a rerun does it again.
Workers never outlive the sweep: each watches its parent and exits when it is gone (``kill -9`` included).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..io import JsonlAppender, exclusive_lock, read_jsonl, remove_stale_temporaries

POLL_S = 0.5


class Interrupted(KeyboardInterrupt):
    """A sweep stopped by Ctrl-C or SIGTERM after storing what had finished."""

    def __init__(self, stored: int, total: int, unit: str = "run"):
        super().__init__(f"{stored} of {total} {unit}s finished and stored")
        self.stored, self.total, self.unit = stored, total, unit


class RunStore:
    """The JSON-lines file of a sweep's finished runs (``<directory>/runs.jsonl``), keyed by ``fields``.

    A later line for the same key wins; a torn last line (a writer killed mid-line) is cut when writing resumes.
    One writer per directory (:func:`~nnformer.io.exclusive_lock`)."""

    def __init__(self, directory: str | os.PathLike, fields: Sequence[str], what: str = "sweep"):
        self.directory, self.fields, self.what = Path(directory), tuple(fields), what
        self.path = self.directory / "runs.jsonl"

    def key(self, record: dict) -> tuple:
        return tuple(record[f] for f in self.fields)

    def records(self) -> dict[tuple, dict]:
        return {self.key(r): r for r in read_jsonl(self.path)}

    def tidy(self) -> None:
        """With nothing left to run: clear, under the directory's lock, what a sweep killed while writing its tables
        left there (:meth:`writing` does it when there are runs to store)."""
        if self.directory.is_dir():
            with exclusive_lock(self.directory, self.what):
                remove_stale_temporaries(self.directory, whole_directory=True)

    @contextmanager
    def writing(self):
        """Holds the directory's lock; yields ``write(record)``."""
        with exclusive_lock(self.directory, self.what), JsonlAppender(self.path) as out:
            remove_stale_temporaries(self.directory, whole_directory=True)  # tables of a sweep killed while writing
            yield out.write


# ---------------------------------------------------------------- worker processes

_CONTEXT: Any = None  # what a worker's jobs share (a benchmark table, a dataset), loaded once per worker


def _exit_when_orphaned(parent: int, poll_s: float) -> None:
    while True:
        if os.getppid() != parent:  # re-parented: the sweep's process is gone
            os._exit(1)
        time.sleep(poll_s)


def watch_parent(parent: int, poll_s: float = POLL_S) -> None:
    """A daemon thread ends this process once ``parent`` (the sweep's pid) is no longer its parent."""
    threading.Thread(target=_exit_when_orphaned, args=(parent, poll_s), daemon=True,
                     name="nnformer-watch-parent").start()


def _init_worker(parent: int, threads: int | None, load: Callable | None, load_args: tuple) -> None:
    global _CONTEXT
    # Ctrl-C in a terminal signals the whole process group: the parent alone handles it and ends the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    watch_parent(parent)
    if threads:
        import torch

        torch.set_num_threads(threads)
    _CONTEXT = load(*load_args) if load is not None else None


def _call(run: Callable, job) -> Any:
    return run(_CONTEXT, job)


def worker_pool(jobs: int, threads: int | None = None, load: Callable | None = None, load_args: tuple = ()):
    """A ``ProcessPoolExecutor`` of ``jobs`` spawned workers that exit when this process does; each calls
    ``load(*load_args)`` once, and its jobs get the result as their context."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(os.getpid(), threads, load, load_args))


def _kill_workers(pool) -> None:
    """End ``pool``'s workers now, their jobs lost, and shut it down without waiting. ``shutdown`` alone would wait
    for the jobs in flight (``cancel_futures`` drops only the queued ones), and so would the interpreter's exit."""
    kill = getattr(pool, "kill_workers", None)  # public from Python 3.14
    if kill is not None:
        kill()
    else:
        _kill_workers_before_3_14(pool)


def _kill_workers_before_3_14(pool) -> None:
    """What ``ProcessPoolExecutor.kill_workers()`` of Python 3.14 does, for older Pythons, which have no public way
    to end a pool's workers: the pool's private map of its worker processes (the one 3.14 reads itself, present
    since 3.2) is copied before ``shutdown``, which clears it, and each live worker gets SIGKILL. Isolated here so
    that it goes once 3.13 is no longer supported."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        try:
            if proc.is_alive():
                proc.kill()
        except (ValueError, ProcessLookupError):  # closed, or gone already
            continue


# ---------------------------------------------------------------- the engine

def run_jobs(todo: Sequence, run: Callable[[Any, Any], Any], *, store: Callable[[Any, Any], None] | None = None,
             jobs: int = 1, context: Any = None, load: Callable | None = None, load_args: tuple = (),
             threads: int | None = None, desc: str = "sweep", unit: str = "run",
             label: Callable[[Any], str] | None = None, progress: bool = True) -> int:
    """Run ``run(context, job)`` for every job of ``todo``; hand each result to ``store(job, result)`` as it
    arrives. Returns how many ran.

    ``jobs > 1`` (and more than one job): that many spawned worker processes, ``threads`` torch threads each
    (default 1), each with its own context from ``load(*load_args)``: ``run`` and ``load`` must be importable
    top-level functions. In this process the context is ``context``, or ``load(*load_args)`` when ``context`` is
    None. At most ``jobs`` jobs are in flight, so a stop leaves nothing queued. Ctrl-C or SIGTERM raises
    :class:`Interrupted` once the finished results are stored and the workers are gone.
    """
    todo = list(todo)
    if not todo:
        return 0
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=desc, unit=unit, disable=not progress, dynamic_ncols=True)
    done = 0

    def finish(job, result) -> None:
        nonlocal done
        with _signals_held():  # a stop between storing and counting would report one run fewer than it stored
            if store is not None:
                store(job, result)
            done += 1
        bar.update(1)

    try:
        if jobs > 1 and len(todo) > 1:
            _run_pool(todo, run, finish, jobs, threads or 1, load, load_args)
        else:
            if context is None and load is not None:
                context = load(*load_args)
            for job in todo:
                if label is not None:
                    bar.set_postfix_str(label(job))
                finish(job, run(context, job))
    except KeyboardInterrupt:
        raise Interrupted(done, len(todo), unit) from None
    finally:
        bar.close()
    return done


def _run_pool(todo: list, run, finish, jobs: int, threads: int, load, load_args) -> None:
    from concurrent.futures import FIRST_COMPLETED, wait

    pending = iter(todo)
    pool = worker_pool(jobs, threads, load, load_args)
    flight: dict = {}
    try:
        for job in _take(pending, jobs):
            flight[pool.submit(_call, run, job)] = job
        while flight:
            ready, _ = wait(list(flight), return_when=FIRST_COMPLETED)
            for f in ready:
                job = flight.pop(f)
                finish(job, f.result())
                for nxt in _take(pending, 1):
                    flight[pool.submit(_call, run, nxt)] = nxt
    except BaseException:
        # store what finished while we were busy, then end the workers: the jobs in flight are lost
        try:
            for f, job in list(flight.items()):
                if f.done() and not f.cancelled() and f.exception() is None:
                    finish(job, f.result())
        finally:  # a second Ctrl-C while storing still ends the workers
            _kill_workers(pool)
        raise
    pool.shutdown(wait=True)


@contextmanager
def _signals_held():
    """Ctrl-C and SIGTERM that arrive while the block runs reach their handler once it ends, in the main thread;
    elsewhere the block runs as it is.

    A blocking signal mask is not enough: a signal that arrived just before the block has its Python handler run
    at some bytecode inside it. So the block swaps the Python-level handlers for one that records the signal, and
    replays what it recorded to the old handlers afterwards. Ignored and default dispositions stay as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list = []

    def record(signum, frame):
        caught.append((signum, frame))

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if callable(handler):
            old[sig] = handler
            signal.signal(sig, record)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for signum, frame in caught:
            old[signum](signum, frame)


def _take(it: Iterable, n: int) -> list:
    out = []
    for job in it:
        out.append(job)
        if len(out) == n:
            break
    return out
