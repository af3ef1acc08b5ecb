"""`harness compare`: Table II measured, BDCA against the field's fusion models trained on the same folds and seeds."""

from __future__ import annotations

import argparse

from harness.commands._experiment_args import add_seeds_argument, parse_folds, run_printer, with_seeds

NAME = "compare"
HELP = ("Train BDCA and the field's fusion models (lfan, jca, rjca, dca, mult, mamba_va, tcn_transformer) alike and "
        "write Table II (measured): intervals, paired verdicts against BDCA, cost; resumable.")  # fmt: skip
EXAMPLES = [
    "harness compare --config demo --data corpus/ --out runs/folds --models bdca,lfan,jca,rjca,dca,mult,mamba_va,"
    "tcn_transformer --folds 3",
    "harness compare --config demo --data corpus/ --out runs/folds --models lfan,dca --folds 3 --seeds 0,1",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness.config import add_config_arguments

    add_config_arguments(p)
    p.add_argument("--data", required=True, help="dataset root in the Aff-Wild2 layout")
    p.add_argument("--cache", help="feature cache root (default: DATA/features)")
    p.add_argument("--out", required=True, help="experiment folder (shared with `harness folds` and `ablate`)")
    p.add_argument("--models", required=True,
                   help="comma-separated stage-2 models; BDCA is added first when missing (every row is paired "
                        "against it)")  # fmt: skip
    p.add_argument("--folds", help="comma-separated folds (default: the config's experiment.ablation_folds)")
    add_seeds_argument(p)
    p.add_argument("--resume", action="store_true", help="continue interrupted runs from their checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.config import config_from_args
    from harness.data.datasets import open_dataset
    from harness.experiments.compare import check_models, run_compare
    from harness.runtime.distributed import setup_strategy

    cfg = with_seeds(config_from_args(args), args.seeds)
    models = check_models([m.strip() for m in args.models.split(",") if m.strip()])
    layout, cache = open_dataset(args.data, args.cache)
    strategy = setup_strategy()
    console = Console() if strategy.on_main else None
    report = run_compare(cfg, layout, cache, args.out, models, parse_folds(args.folds), resume=args.resume,
                         progress=False if args.no_progress else None, console=console,
                         on_result=run_printer(console), strategy=strategy)  # fmt: skip
    if console is not None:
        console.print("written: " + ", ".join(str(f) for f in report.files))
    return 0
