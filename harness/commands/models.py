"""`harness models`: the registered models with their parameters, trainable parameters, forward GFLOPs and, for the
stage-2 models, where they come from (BDCA's paper, or the rival's own: `models.zoo.ZOO`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from models.errors import ModelConfigError

if TYPE_CHECKING:
    from models import ModelSummary

NAME = "models"
HELP = "List registered models with parameters, trainable parameters, forward GFLOPs and citations."
EXAMPLES = [
    "harness models",
    "harness models --kind temporal --audio-dim 62",
    "harness models --kind zoo",
    "harness models vit_large_patch16 bdca --frames 300",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", help="models to show (default: all registered)")
    parser.add_argument("--kind", choices=["vit", "mae", "temporal", "zoo", "resnet"],
                        help="show only one kind of model")
    parser.add_argument("--frames", type=int, default=300, help="frames per window for temporal models")
    parser.add_argument("--visual-dim", type=int, default=1024, help="visual feature width (ViT-L CLS: 1024)")
    parser.add_argument(
        "--audio-dim", type=int, default=190, help="audio feature width (VGGish 128 + MFCC 39 + eGeMAPS 23)"
    )


BDCA_CITATION = "Liang et al., BDCA (the paper; Table IV's rows)"
"""The citation of BDCA's temporal model and its ablations."""


def citation(name: str, kind: str) -> str:
    """Where a registered model comes from: a rival's paper, BDCA's, or '' for the encoders and the baseline."""
    from models.zoo import ZOO

    if name in ZOO:
        return ZOO[name].citation
    return BDCA_CITATION if kind == "temporal" else ""


def build_table(rows: list[ModelSummary], frames: int, visual_dim: int, audio_dim: int) -> Table:
    """The rich table shown by the command.

    Args:
        rows: one summary per model.
        frames: window length used for the temporal models.
        visual_dim: visual feature width used for the temporal models.
        audio_dim: audio feature width used for the temporal models.
    """
    table = Table(
        title="Registered models",
        caption=(
            f"GFLOPs: one forward pass (2 x MACs of matmuls and convolutions), per image for vit/mae and per "
            f"{frames}-frame window (visual {visual_dim}-d, audio {audio_dim}-d) for temporal models; "
            "a training step costs about 3x."
        ),
    )
    table.add_column("model")
    table.add_column("kind")
    table.add_column("params", justify="right")
    table.add_column("trainable", justify="right")
    table.add_column("GFLOPs", justify="right")
    table.add_column("per")
    for r in rows:
        table.add_row(r.name, r.kind, f"{r.params:,}", f"{r.trainable:,}", f"{r.gflops:.3f}", r.per)
    return table


def run(args: argparse.Namespace) -> int:
    from models import list_models, summarize_models

    names = list(args.names) or list_models(args.kind)
    unknown = [n for n in names if n not in list_models()]
    if unknown:
        raise ModelConfigError(f"unknown model(s) {', '.join(unknown)}; registered: {', '.join(list_models())}")
    if args.frames < 1 or args.visual_dim < 1 or args.audio_dim < 1:
        raise ModelConfigError("--frames, --visual-dim and --audio-dim must be positive")
    rows = summarize_models(names, T=args.frames, visual_dim=args.visual_dim, audio_dim=args.audio_dim)
    console = Console()
    console.print(build_table(rows, args.frames, args.visual_dim, args.audio_dim))
    # One unwrapped line per stage-2 model: a citation is read whole, not folded into a narrow column.
    cited = [(r.name, citation(r.name, r.kind)) for r in rows]
    for name, text in cited:
        if text:
            console.print(f"{name}: {text}", soft_wrap=True, highlight=False, markup=False)
    return 0
