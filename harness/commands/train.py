"""`harness train`: stage 1 (encoder + visual features) and/or stage 2 (temporal model) into one run folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.folders.run import RunDir

NAME = "train"
HELP = "Train stage 1 (MAE + hierarchical fine-tuning + features) and/or stage 2 (BDCA) with DeepSpeed; resumable."
EXAMPLES = [
    "harness train --config quick --data corpus/ --out runs/quick",
    "harness train --config demo --data corpus/ --out runs/demo --stage 2 --fold 3 --set stage2.epochs=5",
    "harness train --config demo --data corpus/ --out runs/demo --resume",
    "torchrun --nproc_per_node 2 -m harness.cli train --config demo --data corpus/ --out runs/ds2 --stage 2",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness.config import add_config_arguments

    add_config_arguments(p)
    p.add_argument("--data", required=True, help="dataset root in the Aff-Wild2 layout")
    p.add_argument("--cache", help="feature cache root (default: DATA/features)")
    p.add_argument("--out", required=True, help="run folder (stage 1 goes to OUT/stage1)")
    p.add_argument(
        "--stage",
        choices=["1", "2", "all"],
        default="all",
        help="which stage(s) to run (default: all; `all` skips stage 1 when stage1.enabled is false)",
    )
    p.add_argument("--fold", type=int, default=0, help="fold for stage 2: 0 = official split, 1..k = CV (default 0)")
    p.add_argument("--model", help="temporal model instead of the config's (bdca, bdca_no_dw, concat, ...)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--force", action="store_true",
                   help="train stage 2 even if the folder holds a finished run; write into an --out folder the "
                   "harness did not write (its own files are left untouched and named)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def check_out(out: Path, force: bool) -> None:
    """Claim `--out` as a run folder (`RunDir.claim`): a file, or a non-empty folder without the harness's
    ownership record, is refused (unless `force`, which writes beside what the folder holds and names it).

    Args:
        out: the run folder.
        force: write into a folder that holds other files (they are left untouched).

    Raises:
        HarnessError: naming the folder and the way out.
    """
    RunDir(out).claim(force=force, warn=lambda line: print(f"warning: {line}", file=sys.stderr))


def run(args: argparse.Namespace) -> int:
    from harness.config import config_from_args

    # The output folder and the config are checked before torch and DeepSpeed are imported: a refused input is
    # answered in a second.
    cfg = config_from_args(args)
    check_out(Path(args.out), args.force)
    if args.model:
        cfg = cfg.replace(**{"model.name": args.model})

    from rich.console import Console

    from harness.data.datasets import open_dataset
    from harness.runtime.distributed import setup_strategy

    layout, cache = open_dataset(args.data, args.cache)
    progress = False if args.no_progress else None
    out = Path(args.out)
    strategy = setup_strategy()
    main = strategy.on_main
    console = Console()
    encoder = None
    if args.stage == "1" or (args.stage == "all" and cfg.stage1.enabled):
        from harness.stages.stage1 import run_stage1

        r1 = run_stage1(cfg, layout, cache, RunDir(out).stage1.path, resume=args.resume, progress=progress,
                        strategy=strategy)
        encoder = r1.encoder_weights
        if main:
            state = "cached, skipped" if r1.skipped else \
                f"fine-tune CCC {json.dumps(r1.finetune)}" if r1.finetune else "no fine-tuning"  # fmt: skip
            console.print(f"stage 1: features of {len(r1.videos)} video(s) ({state})")
            if cfg.stage1.reserve > 0:
                console.print(r1.reserve_note())
    if args.stage in ("2", "all"):
        from harness.stages.predict import find_encoder_weights
        from harness.stages.stage2 import train_stage2

        if encoder is None:
            encoder = find_encoder_weights(out, cfg.features.visual)
        r2 = train_stage2(cfg, layout, cache, args.fold, out, resume=args.resume, force=args.force,
                          progress=progress, encoder_weights=encoder, strategy=strategy)  # fmt: skip
        if main:
            s = r2.reported
            console.print(
                f"stage 2 ({r2.model}, fold {r2.fold}{', finished earlier' if r2.skipped else ''}): best epoch "
                f"{r2.best_epoch + 1}, {r2.reported_on} CCC V {s['ccc_v']:.3f} A {s['ccc_a']:.3f} "
                f"P_VA {s['p_va']:.3f}  ->  {out}"
            )
    return 0
