"""`harness corpus make`: generate the deterministic demo corpus (a mini Aff-Wild2) with a progress bar."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from harness.runtime.progress import StepProgress
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
    """The end-of-run table: per split counts and the largest share one video carries (fits 80 columns).

    Args:
        manifest: the corpus manifest.
        title: the table's title.

    Returns:
        The rich table.
    """
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
        caption="largest video: the biggest share of the split's scored frames one raw video carries "
        "(both people of a two-person video together)",
    )
    headers = ("split", "videos", "people", "frames", "faces\nmissing", "-5\nframes", "two-\nperson", "largest\nvideo")
    for col in headers:
        table.add_column(col, justify="left" if col == "split" else "right", no_wrap=True)
    shares = manifest.max_video_share()
    for split, row in manifest.summary().items():
        share = shares.get(split)
        table.add_row(
            split,
            str(row["videos"]),
            str(row["people"]),
            str(row["frames"]),
            str(row["missing_faces"]),
            str(row["unannotated"]),
            str(row["two_person"]),
            f"{share:.1%}" if share is not None and split != "all" else "-",
            end_section=split == "Test",
        )
    return table


def ceilings_table(manifest: CorpusManifest) -> Table:
    """Per split: the oracle's CCC and the visual-only and audio-only ceilings (fits 80 columns).

    Args:
        manifest: the corpus manifest; ceilings it lacks (older manifests) print as "-".

    Returns:
        The rich table.
    """
    table = Table(
        title="Ceilings: the best CCC each kind of predictor could reach",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
        caption="oracle: the clean latent; visual / audio: ideal readers of the face / the voice alone "
        "(definitions: oracle_meaning in corpus_manifest.json)",
    )
    table.add_column("split", justify="left", no_wrap=True)
    groups = (("oracle", manifest.oracle), ("visual", manifest.oracle_visual), ("audio", manifest.oracle_audio))
    for name, _ in groups:
        table.add_column(f"{name}\nV / A", justify="right", no_wrap=True)
        table.add_column(f"{name}\nP_VA", justify="right", no_wrap=True)
    for split in manifest.summary():
        cells: list[str] = []
        for _, scores in groups:
            o = scores.get(split)
            cells += [f"{o.ccc_v:.3f}/{o.ccc_a:.3f}", f"{o.p_va:.3f}"] if o else ["-", "-"]
        table.add_row(split, *cells, end_section=split == "Test")
    return table


def run(args: argparse.Namespace) -> int:
    console = Console()
    start = time.perf_counter()
    label = f"corpus {args.size} seed {args.seed}"
    # A bar in a terminal, a line every few seconds off one (CI logs): rendering is counted in frames.
    with StepProgress(label, console=console, unit="frames", plain_interval_s=5.0, transient=False) as bar:

        def progress(done: int, total: int, what: str) -> None:
            bar.update(done, total, info=what)

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
    console.print(ceilings_table(manifest))
    s = manifest.summary()["all"]
    console.print(
        f"{s['two_person']} two-person video(s), {s['no_audio']} without an audio track; "
        f"see corpus_manifest.json (oracle_meaning) for what each ceiling assumes. Done in {elapsed:.1f} s."
    )
    return 0
