"""`harness clean`: shrink a demo or experiment folder by removing the checkpoints of finished runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from harness.ops.clean import clean_checkpoints

NAME = "clean"
HELP = "Remove the DeepSpeed checkpoints of finished runs under a folder (reruns still reuse them); --dry-run lists."
EXAMPLES = [
    "harness clean demo_runs/demo              # the full demo: most of its bytes are checkpoints",
    "harness clean runs/paper --dry-run        # what would go, and how much",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a demo, experiment or run folder")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")


def run(args: argparse.Namespace) -> int:
    console = Console()
    rep = clean_checkpoints(Path(args.path), dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for p in rep.removed:
        console.print(f"{verb} {p}", highlight=False, soft_wrap=True)
    for p in rep.unrecorded:
        console.print(f"left {p} (not on the harness's record of what it wrote there)", highlight=False,
                      soft_wrap=True)
    for p in rep.kept:
        console.print(f"kept {p} (the run did not finish: `--resume` continues from it)", highlight=False,
                      soft_wrap=True)  # fmt: skip
    mib = 1024 * 1024
    console.print(f"{verb} {len(rep.removed)} checkpoint folder(s), {rep.freed_bytes / mib:.1f} MiB of "
                  f"{rep.total_bytes / mib:.1f} MiB under {args.path}", highlight=False, soft_wrap=True)
    return 0
