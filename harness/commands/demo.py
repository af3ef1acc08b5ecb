"""`harness demo`: the whole pipeline on the generated mini Aff-Wild2 (CPU, nothing downloaded)."""

from __future__ import annotations

import argparse

from harness.config import add_override_argument, overrides_from_args
from harness.experiments.demo import run_demo

NAME = "demo"
HELP = "Run the whole pipeline end to end on the generated demo corpus (CPU): tables, plots, submission."
EXAMPLES = [
    "harness demo                 # default corpus and config (under 15 minutes on 2 CPU cores)",
    "harness demo --quick         # the CI config: smaller corpus and models, every stage (under 3 minutes)",
    "harness demo --out /tmp/demo --set stage2.epochs=4",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="the CI config: small corpus, fewer folds and epochs")
    p.add_argument("--out", help="output folder (default demo_runs/<config>)")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    # No --config: --quick picks the config (quick or demo); --set changes it like every other command's.
    add_override_argument(p)


def run(args: argparse.Namespace) -> int:
    run_demo(quick=args.quick, out=args.out, seed=args.seed, overrides=overrides_from_args(args))
    return 0
