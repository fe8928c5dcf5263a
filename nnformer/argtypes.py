"""Checked argument types for the command line: a bad number ends as a one-line error, exit 2, before any work.

``argparse`` calls these on the flag's text (settings of a recipe, ``--set key=value``, are checked by
:mod:`nnformer.recipes` against their dataclasses); an :class:`argparse.ArgumentTypeError` becomes
``nnformer <verb>: error: argument --flag: <message>`` (see :class:`OneLineParser`).
"""

from __future__ import annotations

import argparse


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (``prog: error: message``) and exit 2, like every other
    bad input of the CLI; ``--help`` still prints the full usage. Sub-parsers inherit the class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        for a in args or ():
            if not isinstance(a, str):
                continue
            if "\0" in a:  # no file name or value can hold one (a real command line never has one; main(argv) might)
                self.error(f"argument {_quoted(a)} holds a NUL byte")
            flag, eq, value = a.partition("=")
            if eq and value == "--" and flag.startswith("--"):  # argparse would drop the value and pass a list on
                self.error(f"argument {flag}: expected one argument")
        return super().parse_known_args(args, namespace)


def int_at_least(lo: int, hi: int | None = None):
    """An integer flag that must be ``>= lo`` (and ``<= hi``: a count or seed that no run could use is refused
    before it overflows a C integer or starts a run that never ends)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {_quoted(text)}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {_quoted(text)}")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"must be at most {hi}, got {_quoted(text)}")
        return v

    return parse


def _quoted(text: str, limit: int = 40) -> str:
    """``text`` for a one-line message: quoted, and shortened when long (a 5,000-digit number)."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def positive_float(text: str) -> float:
    """A finite number above 0 (a budget in ms)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {_quoted(text)}") from None
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {_quoted(text)}")
    return v


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)
MAX_THREADS = 1024  # --threads, --jobs
thread_count = int_at_least(1, MAX_THREADS)
seed_int = int_at_least(0, 2**32 - 1)  # what NumPy's and torch's generators both take
MAX_BATCH = 4096  # --batch of an ONNX model: the batch dimension its input is filled (and, to time it, allocated) with
batch_size = int_at_least(1, MAX_BATCH)

__all__ = ["OneLineParser", "int_at_least", "positive_int", "nonneg_int", "positive_float", "thread_count",
           "seed_int", "batch_size", "MAX_THREADS", "MAX_BATCH"]
