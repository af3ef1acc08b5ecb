"""`harness corpus make`: generate the deterministic demo corpus (a mini Aff-Wild2) with a progress bar."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from preprocessing.corpus import PRESETS, CorpusManifest, make_corpus

NAME = "corpus"
HELP = "Generate the deterministic demo corpus: a mini Aff-Wild2 (videos, aligned crops, V/A labels, test files)."
EXAMPLES = [
    "harness corpus make --out data/demo",
    "harness corpus make --out /tmp/tiny --size small --seed 3",
    "harness corpus make --out data/demo --force --workers 2",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    make = sub.add_parser("make", help="write a corpus (or reuse the complete one already there)")
    make.add_argument("--out", required=True, type=Path, help="corpus root folder (new, empty, or an earlier corpus)")
    make.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    make.add_argument("--size", choices=list(PRESETS), default="default", help="size preset (default: default)")
    make.add_argument("--workers", type=int, default=None, help="rendering processes (default: 1 small, else 2)")
    make.add_argument("--force", action="store_true", help="rebuild even when a matching corpus is there")


def summary_table(manifest: CorpusManifest, title: str) -> Table:
    """The end-of-run table: per split counts and the oracle's CCC ceiling (fits an 80-column terminal)."""
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
        caption="oracle: CCC of the labels vs the clean latent (see oracle_meaning in corpus_manifest.json)",
    )
    headers = (
        "split",
        "videos",
        "people",
        "frames",
        "faces\nmissing",
        "-5\nframes",
        "oracle\nCCC_V",
        "oracle\nCCC_A",
        "oracle\nP_VA",
    )
    for col in headers:
        table.add_column(col, justify="left" if col == "split" else "right", no_wrap=True)
    for split, row in manifest.summary().items():
        o = manifest.oracle.get(split)
        table.add_row(
            split,
            str(row["videos"]),
            str(row["people"]),
            str(row["frames"]),
            str(row["missing_faces"]),
            str(row["unannotated"]),
            *((f"{o.ccc_v:.4f}", f"{o.ccc_a:.4f}", f"{o.p_va:.4f}") if o else ("-", "-", "-")),
            end_section=split == "Test",
        )
    return table


def run(args: argparse.Namespace) -> int:
    console = Console()
    start = time.perf_counter()
    with Progress(
        TextColumn("[bold]corpus[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(f"{args.size} seed {args.seed}", total=None)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=f"{args.size} seed {args.seed}: {what}")

        manifest = make_corpus(
            args.out, seed=args.seed, size=args.size, progress=progress, workers=args.workers, force=args.force
        )
    elapsed = time.perf_counter() - start
    console.print(
        summary_table(
            manifest,
            f"Demo corpus at {args.out} (seed {manifest.seed}, {manifest.size}, "
            f"generator {manifest.generator_version})",
        )
    )
    s = manifest.summary()["all"]
    console.print(
        f"{s['two_person']} two-person video(s), {s['no_audio']} without an audio track; "
        f"oracle = labels vs the clean latent (see corpus_manifest.json: oracle_meaning). Done in {elapsed:.1f} s."
    )
    return 0
