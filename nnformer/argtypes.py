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


def positive_float(text: str) -> float:
    """A finite number above 0 (a budget in ms)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)

__all__ = ["OneLineParser", "int_at_least", "positive_int", "nonneg_int", "positive_float"]
