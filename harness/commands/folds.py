"""`harness folds`: Table I, the configured model on fold 0 (official split) and the CV folds 1..k."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command module stays light: `harness --help` imports every command
    from rich.console import Console

    from harness.config import Config
    from harness.stage2 import Stage2Result

NAME = "folds"
HELP = "Train the configured folds (0 = official split, 1-5 = CV) and write Table I beside the paper's; resumable."
EXAMPLES = [
    "harness folds --config demo --data corpus/ --out runs/folds",
    "harness folds --config quick --data corpus/ --out runs/quick --folds 0,1",
    "harness folds --config paper --data /data/Aff-Wild2 --out runs/paper --resume",
    "harness folds --config demo --data corpus/ --out runs/folds --folds 3 --seeds 0,1,2",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness.config import add_config_arguments

    add_config_arguments(p)
    p.add_argument("--data", required=True, help="dataset root in the Aff-Wild2 layout")
    p.add_argument("--cache", help="feature cache root (default: DATA/features)")
    p.add_argument("--out", required=True, help="experiment folder (stage1/, folds/fold<i>/, table_I.*)")
    p.add_argument("--folds", help="comma-separated folds (default: the config's experiment.folds)")
    add_seeds_argument(p)
    p.add_argument("--resume", action="store_true", help="continue interrupted runs from their checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


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
    from core.errors import HarnessError

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
    from core.errors import HarnessError

    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise HarnessError(f"--folds {text!r}: expected comma-separated integers like 0,1,2") from None


def run_printer(console: Console | None) -> Callable[[Stage2Result], None] | None:
    """A callback that prints, after each run, whether it was trained now or reused (a rerun resumes past it)."""
    if console is None:
        return None
    from harness.experiments import describe_result

    return lambda res: console.print(describe_result(res), soft_wrap=True, highlight=False)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.config import config_from_args
    from harness.data import open_dataset
    from harness.distributed import setup_strategy
    from harness.experiments import run_folds

    cfg = with_seeds(config_from_args(args), args.seeds)
    layout, cache = open_dataset(args.data, args.cache)
    strategy = setup_strategy()
    console = Console() if strategy.on_main else None
    report = run_folds(cfg, layout, cache, args.out, parse_folds(args.folds), resume=args.resume,
                       progress=False if args.no_progress else None, console=console,
                       on_result=run_printer(console), strategy=strategy)  # fmt: skip
    if console is not None:
        console.print("written: " + ", ".join(str(f) for f in report.files))
    return 0
