"""Checked argument types for the command line: a bad number ends as a one-line error, exit 2, before any work.

``argparse`` calls these on the flag's text; an :class:`argparse.ArgumentTypeError` becomes
``nnformer <verb>: error: argument --flag: <message>`` (see :class:`OneLineParser`).
"""

from __future__ import annotations

import argparse
import math


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (``prog: error: message``) and exit 2, like every other
    bad input of the CLI; ``--help`` still prints the full usage. Sub-parsers inherit the class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_at_least(lo: int):
    """An integer flag that must be ``>= lo``."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {v}")
        return v

    return parse


def float_in(lo: float, hi: float = math.inf, lo_open: bool = False, hi_open: bool = True):
    """A finite float flag within ``[lo, hi)`` (``lo_open``: ``lo`` excluded; ``hi_open=False``: ``hi`` included)."""
    lo_s, hi_s = "(" if lo_open else "[", ")" if hi_open else "]"
    want = f"greater than {lo:g}" if hi == math.inf and lo_open else (
        f"at least {lo:g}" if hi == math.inf else f"in {lo_s}{lo:g}, {hi:g}{hi_s}")

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {want}, got {text}")
        return v

    return parse


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)
nonneg_float = float_in(0.0)
positive_float = float_in(0.0, lo_open=True)
probability = float_in(0.0, 1.0)  # a drop rate: [0, 1)

__all__ = ["OneLineParser", "int_at_least", "float_in", "positive_int", "nonneg_int", "nonneg_float",
           "positive_float", "probability"]
