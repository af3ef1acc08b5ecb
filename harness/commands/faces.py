"""`harness faces VIDEO --out DIR`: detect, align and save the face of every frame of one video."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from core.ownership import check_plain_name, claim_folder
from harness.runtime.progress import StepProgress
from preprocessing.crops import CROPS_DIR, extract_crops, lock_crops
from preprocessing.faces.detectors import DEFAULT_DETECTOR, DETECTORS, get_detector

NAME = "faces"
HELP = "write cropped_aligned/<video>/00001.jpg ...: one 224x224 aligned face per frame of a video"
EXAMPLES = [
    "harness faces clip.mp4 --out data/",
    "harness faces clip.mp4 --out data/ --stride 3 --input-size 320",
    "harness faces interview.mp4 --out data/ --two-person",
]


def _input_size(text: str) -> int | None:
    return None if text.lower() in {"native", "none"} else int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `harness faces`."""
    parser.add_argument("video", help="the video file")
    parser.add_argument("--out", required=True, help="folder that receives cropped_aligned/<video>/")
    parser.add_argument("--name", default=None, help="output folder name (default: the video's file stem)")
    parser.add_argument("--force", action="store_true",
                        help="write into an --out folder the harness did not write, beside what it holds (left "
                        "untouched)")  # fmt: skip
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, choices=DETECTORS, help="face detector")
    parser.add_argument(
        "--input-size",
        type=_input_size,
        default=640,
        help="SCRFD: longer side the frame is resized to, or 'native' (default: 640)",
    )
    parser.add_argument("--stride", type=int, default=1, help="detect every N frames, interpolate between (default 1)")
    parser.add_argument("--two-person", action="store_true", help="write <video>_left and <video>_right")
    parser.add_argument("--weights-dir", default=None, help="weights folder (default: $BDCA_WEIGHTS or the cache)")
    parser.add_argument("--detector-weights", default=None, help="explicit weights file (e.g. for RetinaFace)")


def run(args: argparse.Namespace) -> int:
    """Extract the crops of one video with a progress bar, then print the counts.

    The video's crops are locked first, before the detector loads: a second run on the same video and `--out`
    stops at once with a message naming the folder and the video (`CropsLockedError`) instead of interleaving its
    crops.
    """
    if args.name is not None:
        check_plain_name(args.name, "--name")
    claim_folder(args.out, (CROPS_DIR,), what="faces output folder", force=args.force,
                 warn=lambda line: print(f"warning: {line}", file=sys.stderr))  # fmt: skip
    with lock_crops(args.out, args.name or Path(args.video).stem):
        return _extract(args)


def _extract(args: argparse.Namespace) -> int:
    """Detect, align and save the crops of `args.video` while `run` holds the lock; print what was done."""
    options = {"input_size": args.input_size} if args.detector == "scrfd" else {}
    detector = get_detector(args.detector, weights=args.detector_weights, weights_dir=args.weights_dir, **options)
    console = Console()
    with StepProgress(args.name or str(args.video), console=console, unit="frames", plain_interval_s=5.0) as bar:
        report = extract_crops(
            args.video,
            args.out,
            video_name=args.name,
            detector=detector,
            stride=args.stride,
            two_person=args.two_person,
            progress=lambda done, total: bar.update(done, total),
        )
    table = Table(
        title=f"{report.video}: {report.frames} frames" + (" (already done, skipped)" if report.skipped else "")
    )
    for col in ("folder", "with face", "without face"):
        table.add_column(col)
    for s in report.subjects:
        table.add_row(str(s.out_dir), str(s.with_face), str(s.without_face))
    console.print(table)
    if not report.skipped:
        console.print(f"{report.fps:.1f} frames/s, detector on {report.detector_calls} frames", highlight=False)
    for note in report.notes:
        console.print(f"[yellow]warning:[/] {note}", highlight=False)
    return 0
