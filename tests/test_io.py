"""Atomic writes, the append-only run store, the one-writer lock and the output checks (nnformer.io)."""

import json
import os
import subprocess
import sys

import pytest

from nnformer.errors import DataError, NNFormerError
from nnformer.io import (JsonlAppender, atomic_open, atomic_write_json, atomic_write_text, check_output_dir,
                         check_output_file, exclusive_lock, read_jsonl, remove_stale_temporaries)


def test_an_atomic_write_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "a" / "out.json"
    atomic_write_json(target, {"x": 1})
    assert json.loads(target.read_text()) == {"x": 1}

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with atomic_open(target) as f:
            f.write('{"x": 2')  # half of a record, then the writer fails
            raise Boom
    assert json.loads(target.read_text()) == {"x": 1}  # the old file stands
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]  # no temporary left


def test_stale_temporaries_of_a_killed_writer_are_removed(tmp_path):
    atomic_write_text(tmp_path / "t.md", "ok")
    (tmp_path / ".tmp-t.md.abc.md").write_text("half")
    (tmp_path / ".tmp-other.csv.x.csv").write_text("half")
    assert remove_stale_temporaries(tmp_path / "t.md") == 1
    assert remove_stale_temporaries(tmp_path, whole_directory=True) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.md"]


def test_the_store_resumes_after_a_torn_line_and_strict_reading_refuses_it(tmp_path):
    path = tmp_path / "runs.jsonl"
    with JsonlAppender(path) as out:
        out.write({"k": 1})
    with open(path, "a") as f:
        f.write('{"k": 2')  # a writer killed mid-line
    assert read_jsonl(path) == [{"k": 1}]
    with pytest.raises(DataError, match="line 2"):
        read_jsonl(path, strict=True)
    with JsonlAppender(path) as out:  # the torn line is cut before the next record
        out.write({"k": 3})
    assert read_jsonl(path, strict=True) == [{"k": 1}, {"k": 3}]


def test_one_writer_per_directory(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from nnformer.io import exclusive_lock\n"
        f"with exclusive_lock({str(tmp_path)!r}, 'sweep'):\n    print('held', flush=True); time.sleep(30)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DataError, match="sweep"):
            with exclusive_lock(tmp_path, "sweep"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with exclusive_lock(tmp_path, "sweep"):  # free again once its holder is gone
        pass
    assert os.listdir(tmp_path) == []  # the lock leaves no file


def test_output_paths_are_checked_before_any_work(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NNFormerError, match="not a directory"):
        check_output_dir(tmp_path / "f")
    with pytest.raises(NNFormerError, match="is a directory"):
        check_output_file(tmp_path)
    assert check_output_dir(tmp_path / "new" / "dir") and not (tmp_path / "new").exists()  # nothing made
