"""`harness ablate`: Table IV (fusion variants) and Table III (features without vs with fine-tuning)."""

from __future__ import annotations

import argparse

from harness.commands._experiment_args import add_seeds_argument, parse_folds, run_printer, with_seeds

NAME = "ablate"
HELP = "Run Table IV (audio/visual only, concat, BDCA w/o DW, BDCA) and Table III on the same folds; resumable."
EXAMPLES = [
    "harness ablate --config demo --data corpus/ --out runs/folds",
    "harness ablate --config quick --data corpus/ --out runs/quick --folds 0 --no-table3",
    "harness ablate --config demo --data corpus/ --out runs/folds --models bdca,concat",
    "harness ablate --config demo --data corpus/ --out runs/folds --seeds 0,1 --no-table3",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness.config import add_config_arguments

    add_config_arguments(p)
    p.add_argument("--data", required=True, help="dataset root in the Aff-Wild2 layout")
    p.add_argument("--cache", help="feature cache root (default: DATA/features)")
    p.add_argument("--out", required=True, help="experiment folder (shared with `harness folds`)")
    p.add_argument("--folds", help="comma-separated folds (default: the config's experiment.ablation_folds)")
    add_seeds_argument(p)
    p.add_argument("--models", help="comma-separated Table IV models (default: experiment.ablation_models)")
    p.add_argument("--no-table3", action="store_true", help="skip Table III")
    p.add_argument("--resume", action="store_true", help="continue interrupted runs from their checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.config import config_from_args
    from harness.data.datasets import open_dataset
    from harness.experiments.ablation import run_ablation
    from harness.runtime.distributed import setup_strategy

    cfg = with_seeds(config_from_args(args), args.seeds)
    if args.models:
        # Through the config, so that the rows are checked like the config's own (names, `no_refine`'s switch).
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        cfg = cfg.replace(**{"experiment.ablation_models": models})
    layout, cache = open_dataset(args.data, args.cache)
    strategy = setup_strategy()
    console = Console() if strategy.on_main else None
    reports = run_ablation(cfg, layout, cache, args.out, parse_folds(args.folds),
                           table3=False if args.no_table3 else None, resume=args.resume,
                           progress=False if args.no_progress else None, console=console,
                           on_result=run_printer(console), strategy=strategy)  # fmt: skip
    if console is not None:
        console.print("written: " + ", ".join(str(f) for r in reports for f in r.files))
    return 0
