"""Arguments and printing shared by the experiment commands (`folds`, `ablate`, `compare`): seeds, folds, and the
line printed after each run. A module of the commands package that is no command (its name starts with `_`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from core.errors import HarnessError

if TYPE_CHECKING:  # the command modules stay light: `harness --help` imports every command
    from rich.console import Console

    from harness.config import Config
    from harness.stages.skeleton import StageResult


def add_seeds_argument(p: argparse.ArgumentParser) -> None:
    """`--seeds 0,1,2`: the stage-2 seeds (shared by `folds` and `ablate`)."""
    p.add_argument("--seeds", help="comma-separated stage-2 seeds: each (fold, row) is trained once per seed and "
                   "the tables show mean ± std over seeds beside the interval (default: the config's "
                   "experiment.seeds, else its seed); stage 1 keeps the config's seed")  # fmt: skip


def parse_seeds(text: str | None) -> list[int] | None:
    """`"0,1,2"` -> [0, 1, 2]; None (or empty) stays None. Ranges and repeats are checked by the config.

    Raises:
        HarnessError: not comma-separated integers.
    """
    if not text:
        return None
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise HarnessError(f"--seeds {text!r}: expected comma-separated integers like 0,1,2") from None
    if not seeds:
        raise HarnessError(f"--seeds {text!r}: no seed given")
    return seeds


def with_seeds(cfg: Config, text: str | None) -> Config:
    """The config with `--seeds` as its `experiment.seeds` (checked like the config file: range, repeats).

    Args:
        cfg: the loaded config.
        text: the `--seeds` value (None: the config unchanged).
    """
    seeds = parse_seeds(text)
    return cfg if seeds is None else cfg.replace(**{"experiment.seeds": seeds})


def parse_folds(text: str | None) -> list[int] | None:
    """`"0,1,3"` -> [0, 1, 3]; None stays None."""
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise HarnessError(f"--folds {text!r}: expected comma-separated integers like 0,1,2") from None


def run_printer(console: Console | None) -> Callable[[StageResult], None] | None:
    """A callback that prints, after each run, whether it was trained now or reused (a rerun resumes past it)."""
    if console is None:
        return None
    from harness.experiments.rows import describe_result

    return lambda res: console.print(describe_result(res), soft_wrap=True, highlight=False)
