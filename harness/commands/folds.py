"""`harness folds`: Table I, the configured model on fold 0 (official split) and the CV folds 1..k."""

from __future__ import annotations

import argparse

from harness.commands._experiment_args import add_seeds_argument, parse_folds, run_printer, with_seeds

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


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.config import config_from_args
    from harness.data.datasets import open_dataset
    from harness.experiments.folds import run_folds
    from harness.runtime.distributed import setup_strategy

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
