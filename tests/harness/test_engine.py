"""The sweep engine: workers end with their sweep; Ctrl-C or SIGTERM stops a sweep within seconds, keeps what
finished, and a rerun completes it to the same numbers."""

import os
import signal
import subprocess
import sys
import time

import pytest

CHILD = """
import sys, time
from nnformer.harness.engine import worker_pool
pool = worker_pool(2)
futures = [pool.submit(time.sleep, 120) for _ in range(2)]
time.sleep(1.0)
print(" ".join(str(p) for p in pool._processes), flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
@pytest.mark.slow
def test_workers_exit_when_the_sweep_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(w) for w in workers)  # busy with their 120 s jobs
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers)
    finally:
        parent.kill()
        for w in workers if "workers" in locals() else []:
            if _alive(w):
                os.kill(w, signal.SIGKILL)


SWEEP = ["reproduce", "accuracy", "--space", "nb201", "--methods", "mlp,gcn", "--ns", "40", "--seeds", "2",
         "--quiet", "--jobs", "2", "--set", "n_layers=1", "--set", "dim=16", "--set", "epochs=20"]
STORE = "nb201-cifar10/scaled-dim16-epochs20-nlayers1/runs.jsonl"


def _runs(path) -> dict:
    import json

    return {(r["method"], r["n_train"], r["seed"]): (r["tau_test"], r["tau_val"])
            for r in map(json.loads, open(path).read().splitlines())}


def _session_members(sid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != sid:
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":  # field 6 of stat: the session id
                out.append(int(d))
    return out


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
@pytest.mark.slow  # three sweeps of 4 runs (about 30 s); CI runs it in its second step
@pytest.mark.parametrize("sig,target", [(signal.SIGINT, "group"), (signal.SIGTERM, "process")])
def test_a_stopped_sweep_keeps_finished_runs_and_a_rerun_gives_the_same_numbers(tmp_path, data_dir, sig, target):
    """Ctrl-C as a terminal sends it (to the whole process group), or SIGTERM to the sweep alone: exit 130 within
    seconds with one line, the finished runs stored, no worker left; the rerun completes the grid to the numbers of
    a sweep never stopped."""
    env = {**os.environ, "NNFORMER_DATA": str(data_dir)}
    cmd = [sys.executable, "-m", "nnformer", *SWEEP]
    whole = subprocess.run([*cmd, "--out", str(tmp_path / "whole")], env=env, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr

    out = tmp_path / "stopped"
    store = out / STORE
    # as a terminal starts it: Ctrl-C not ignored (a shell's background job, e.g. this test run, would ignore it)
    p = subprocess.Popen([*cmd, "--out", str(out)], env=env, start_new_session=True, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (store.is_file() and store.read_text().count("\n") >= 1) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.poll() is None, "the sweep ended before it could be stopped"
        t0 = time.monotonic()
        os.killpg(p.pid, sig) if target == "group" else p.send_signal(sig)
        _, err = p.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        p.kill()
    assert p.returncode == 130 and took < 15
    assert err.count("\n") == 1 and err.startswith("nnformer: interrupted") and "Traceback" not in err
    time.sleep(1.0)
    assert _session_members(p.pid) == []  # the workers are gone too
    stopped = _runs(store)
    assert 1 <= len(stopped) < 4 and f"{len(stopped)} of 4 runs" in err

    again = subprocess.run([*cmd, "--out", str(out)], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert _runs(store) == _runs(tmp_path / "whole" / STORE)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_killing_a_pool_ends_busy_workers_without_waiting_for_their_jobs():
    """The stop path's ``_kill_workers``: Python 3.14's public ``kill_workers()`` where the pool has it, else the
    fallback; either way a worker in a long job is gone within seconds and the pool shut down without waiting."""
    import multiprocessing as mp
    from concurrent.futures import CancelledError
    from concurrent.futures.process import BrokenProcessPool

    from nnformer.harness import engine

    calls = []

    class NewPool:
        def kill_workers(self):
            calls.append("kill_workers")

        def shutdown(self, *a, **k):
            calls.append("shutdown")

    engine._kill_workers(NewPool())
    assert calls == ["kill_workers"]  # the public call does it all: nothing else touched

    before = set(mp.active_children())
    pool = engine.worker_pool(2)
    futures = [pool.submit(time.sleep, 120) for _ in range(3)]  # two busy workers, one job queued
    workers = [p for p in mp.active_children() if p not in before]
    assert len(workers) == 2
    t0 = time.monotonic()
    engine._kill_workers(pool)
    assert time.monotonic() - t0 < 5  # did not wait for the jobs
    pids = [w.pid for w in workers]  # /proc, not is_alive(): the pool's thread reaps them, racing a join here
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)
    for f in futures:
        with pytest.raises((BrokenProcessPool, CancelledError)):
            f.result(timeout=10)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_whose_handler_runs_while_a_result_is_stored_counts_that_result(sig):
    """A signal that arrived just before a result is stored has its Python handler run at some bytecode while the
    store writes: the result is stored and counted, and the stop takes effect after it, reporting what is stored."""
    from nnformer.harness import engine

    def stop(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(sig, stop)
    stored = []

    def store(job, result):
        stored.append(job)
        if job == 1:  # the handler, as the interpreter would run it mid-store
            signal.getsignal(sig)(sig, None)

    try:
        with pytest.raises(engine.Interrupted) as e:
            engine.run_jobs(range(4), lambda ctx, job: job * 2, store=store, context=object(), progress=False)
    finally:
        signal.signal(sig, old)
    assert stored == [0, 1]
    assert str(e.value) == "2 of 4 runs finished and stored"
    assert signal.getsignal(sig) is old  # the handler is back


def test_a_finished_sweep_clears_the_table_temporaries_a_killed_one_left(tmp_path):
    """A sweep killed while writing its tables, all runs stored, leaves ``.tmp-*`` files: the next run of the
    accuracy sweep, with nothing to run, clears them under the directory's lock (its other files are kept)."""
    from nnformer.harness import sweep
    from nnformer.harness.engine import RunStore

    directory = tmp_path / "nb201-cifar10" / "scaled"
    directory.mkdir(parents=True)
    (directory / ".tmp-table_tau_vs_n.png.abc123.png").write_bytes(b"half a plot")
    (directory / "table.md").write_text("kept")
    store = RunStore(directory, ("method",))
    store.tidy()
    assert sorted(p.name for p in directory.iterdir()) == ["table.md"]
    (directory / ".tmp-table.md.x.md").write_text("torn")

    class Space:  # an empty grid: every run (none) is stored
        name, task = "nb201-cifar10", "accuracy"

    assert sweep.sweep(Space(), [], [], [], "scaled", directory, {}) == []
    assert not list(directory.glob(".tmp-*")) and (directory / "table.md").read_text() == "kept"
    RunStore(tmp_path / "absent", ("method",)).tidy()  # no directory: nothing to do
