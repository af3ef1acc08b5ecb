"""`harness preprocess`: aligned face crops and per-frame audio features for a dataset, a folder or a video."""

from __future__ import annotations

import argparse
import os

import polars as pl
from rich.console import Console

from harness.config import field_type
from harness.reporting.tables import print_table
from harness.runtime.findings import Finding, from_message, print_findings
from harness.runtime.progress import StepProgress
from harness.runtime.sharding import Shard, ShardError, parse_shard
from harness.stages.preprocess import PreprocessConfig, VideoResult, preprocess

NAME = "preprocess"
HELP = "Decode videos, detect and align faces (224x224), compute MFCC/eGeMAPS(/VGGish) per frame; resumable."
EXAMPLES = [
    "harness preprocess /data/Aff-Wild2 --out cache/affwild2",
    "harness preprocess clips/ --out cache/clips --stride 2",
    "harness preprocess talk.mp4 --out cache/talk --vggish weights/vggish",
    "harness preprocess clips/ --out cache/clips --encoder runs/demo/stage1/finetune/best.safetensors",
    "torchrun --nproc_per_node 8 -m harness.cli preprocess /data/Aff-Wild2 --out cache/affwild2",
    "harness preprocess /data/Aff-Wild2 --out cache/affwild2 --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT",
]


_DEFAULTS = PreprocessConfig()
"""The config's `preprocess` section defaults: the flags' defaults come from it, never typed twice."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="Aff-Wild2 root, folder of videos, or one video file")
    p.add_argument("--out", required=True, help="output root (cropped_aligned/, features/)")
    p.add_argument("--detector", default=_DEFAULTS.detector,
                   help=f"face detector: scrfd, mtcnn, retinaface (default {_DEFAULTS.detector})")
    p.add_argument("--stride", type=field_type(PreprocessConfig, "stride"), default=_DEFAULTS.stride,
                   help=f"detect every N frames, interpolate landmarks between (default {_DEFAULTS.stride})")
    p.add_argument("--input-size", type=field_type(PreprocessConfig, "input_size"), default=_DEFAULTS.input_size,
                   help=f"SCRFD input side in pixels (default {_DEFAULTS.input_size})")
    p.add_argument("--detect", action="store_true", help="detect faces even where the dataset ships crops")
    p.add_argument("--no-faces", action="store_true", help="skip face detection and alignment")
    p.add_argument("--no-audio", action="store_true", help="skip audio features")
    p.add_argument("--vggish", help="VGGish weights (file or folder with vggish-10086976.pth + PCA params)")
    p.add_argument("--encoder", help="encoder checkpoint for per-frame visual features (stage-1 best.safetensors, "
                   "mae_pretrain_vit_large.pth, or timm's vit_large_patch16_224.mae state dict)")
    p.add_argument("--encoder-config", default=_DEFAULTS.encoder_config,
                   help=f"config describing the encoder's ViT (default {_DEFAULTS.encoder_config})")
    p.add_argument("--strict", action="store_true", help="stop at the first bad video")
    p.add_argument("--force", action="store_true",
                   help="write into an --out folder the harness did not write, beside what it holds (left untouched)")
    p.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                   help="do shard I of N (0-based) of the videos, split by frames; for job arrays (under torchrun "
                   "each rank takes its own shard)")


def result_findings(results: list[VideoResult]) -> list[Finding]:
    """Each failed video as an error (at the file its message names) and what was only partly usable, and how it
    was handled, as notes at the video.

    Args:
        results: the per-video results of `preprocess`.
    """
    out: list[Finding] = []
    for r in results:
        if r.error:
            out.append(from_message(r.error, r.video))
        out.extend(Finding("note", r.video, note) for note in r.notes)
    return out


def _shard(text: str) -> Shard:
    try:
        return parse_shard(text)
    except ShardError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _launched() -> bool:
    """Whether a launcher (torchrun, or one that sets the same variables) started several processes."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def run(args: argparse.Namespace) -> int:
    strategy = None
    if _launched():
        from harness.runtime.distributed import setup_strategy

        strategy = setup_strategy()
    main = strategy is None or strategy.on_main
    console = Console(quiet=not main)
    if not args.vggish:
        console.print("[yellow]VGGish off[/]: no weights given (--vggish PATH); audio features are MFCC 39 + "
                      "eGeMAPS 23 = 62 dims", soft_wrap=True)  # fmt: skip
    cfg = PreprocessConfig(faces=not args.no_faces, detect=args.detect, detector=args.detector, stride=args.stride,
                           input_size=args.input_size,
                           audio=not args.no_audio, vggish=args.vggish, encoder=args.encoder,
                           encoder_config=args.encoder_config)
    label = "preprocess" if strategy is None else f"preprocess (rank {strategy.rank} of {strategy.world_size})"
    if args.shard is not None:
        label = f"preprocess (shard {args.shard})"
    with StepProgress(label, console=console, unit="videos", enabled=main) as bar:
        results = preprocess(args.input, args.out, cfg, strict=args.strict,
                             progress=lambda v, i, n: bar.update(i, n, info=v), shard=args.shard, strategy=strategy,
                             force=args.force, warn=lambda line: console.print(f"[yellow]warning[/]: {line}",
                                                                               highlight=False, soft_wrap=True))
    if not main:
        return 1 if any(r.error for r in results) else 0
    df = pl.DataFrame([
        {"video": r.video, "frames": r.frames, "fps": r.fps, "audio track": "yes" if r.has_audio else "no",
         "faces found": "-" if r.with_face is None else f"{r.with_face}/{r.with_face + r.without_face}",
         "faces": r.faces, "audio": r.audio, "error": r.error or "", "s": r.seconds}
        for r in results
    ])
    print_table(df, title=f"Preprocessed {len(results)} video(s) into {args.out}", console=console, floats=1)
    print_findings(result_findings(results), console, title="problems and notes")
    bad = [r for r in results if r.error]
    if bad:
        console.print(f"[red]{len(bad)} video(s) failed[/]; the others are done (see preprocess_summary.json)",
                      soft_wrap=True)  # fmt: skip
    return 1 if bad else 0
