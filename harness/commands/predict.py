"""`harness predict`: per-frame valence/arousal from a trained run, for a dataset split or one raw video."""

from __future__ import annotations

import argparse

NAME = "predict"
HELP = "Predict every frame with a trained run: a split of a dataset (submission file) or one raw video (CSV + PNG)."
EXAMPLES = [
    "harness predict runs/demo --data corpus/ --out runs/demo/predictions/submission.csv",
    "harness predict runs/demo --data corpus/ --split validation --out val.csv",
    "harness predict runs/demo talk.mp4 --out talk_va/",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a stage-2 run folder (config.yaml, best.safetensors, norm_stats.npz)")
    p.add_argument("video", nargs="?", help="a raw video file to predict instead of a dataset split")
    p.add_argument("--data", help="dataset root in the Aff-Wild2 layout")
    p.add_argument("--cache", help="feature cache root (default: DATA/features)")
    p.add_argument("--split", choices=["test", "validation", "train"], default="test", help="split (default test)")
    p.add_argument("--out", required=True, help="submission file (split) or output folder (video)")
    p.add_argument("--encoder", help="stage-1 ViT weights for a raw video (default: found beside the run)")
    p.add_argument("--vggish", help="VGGish weights for a raw video, when the run uses VGGish features")
    p.add_argument("--no-faces", action="store_true", help="raw video: skip face detection (audio-driven)")
    p.add_argument("--pad", action="store_true", help="repeat a video's last prediction where the sample needs more")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --out that is not an earlier output of this command")  # fmt: skip


def check_out(out: str, video: bool, force: bool) -> None:
    """Refuse an `--out` that exists and is not an earlier output of `harness predict` (unless `force`).

    A split's output is a submission file (its first line is the submission header), and never a FIFO, socket or
    device (checking one could wait forever); a video's output is a folder the harness's ownership record
    (`core.ownership`) says it wrote, or a new or empty one.

    Args:
        out: the `--out` path.
        video: predicting one raw video (a folder), not a split (a file).
        force: replace it anyway (a folder in place of a file is still refused).

    Raises:
        HarnessError: naming the path and the way out.
    """
    import stat
    import sys
    from pathlib import Path

    from core.errors import HarnessError
    from core.ownership import claim_folder
    from core.safe_read import ReadError, open_regular
    from harness.folders.run import VIDEO_WORK_DIR
    from submissions.formats import SUBMISSION_HEADER
    from submissions.limits import MAX_PREDICTION_BYTES

    p = Path(out)
    if video:
        if p.exists() and not p.is_dir():
            raise HarnessError(f"{p}: exists and is not a folder; a video's predictions go to a folder")
        claim_folder(p, (VIDEO_WORK_DIR,), what="video prediction folder", force=force,
                     warn=lambda line: print(f"warning: {line}", file=sys.stderr))  # fmt: skip
        return
    if not (p.exists() or p.is_symlink()):
        return
    if p.is_dir():
        raise HarnessError(f"{p}: is a folder; give the path of the submission file to write")
    try:
        mode = p.stat().st_mode
    except OSError as exc:
        raise HarnessError(f"{p}: cannot be read ({exc.strerror}); give the path of the submission file to write"
                           ) from None  # fmt: skip
    if not stat.S_ISREG(mode):
        # Opening a FIFO to check its first line would wait for a writer forever; a device is never replaced.
        raise HarnessError(f"{p}: exists and is not a regular file (a FIFO, socket or device); refusing to read or "
                           "replace it, also with --force: give the path of the submission file to write")  # fmt: skip
    if force:
        return
    try:  # stat-ed before it is opened, and opened without blocking: an existing FIFO never hangs the command
        with open_regular(p, "submission file", MAX_PREDICTION_BYTES) as (fh, _size):
            first = fh.readline(256).decode("utf-8", "replace").strip()
    except ReadError:
        first = ""
    if first.lstrip("\ufeff").replace(" ", "") != SUBMISSION_HEADER:
        raise HarnessError(f"{p}: exists and is not a submission file; refusing to replace it (pass --force to "
                           "replace it)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from core.errors import HarnessError

    console = Console()
    check_out(args.out, bool(args.video), args.force)
    if args.video:
        from harness.stages.predict import predict_video_file

        preds, files = predict_video_file(args.run, args.video, args.out, args.encoder, args.vggish,
                                          faces=not args.no_faces)  # fmt: skip
        console.print(f"{preds.shape[0]} frames predicted -> {', '.join(str(f) for f in files)}")
        return 0
    if not args.data:
        raise HarnessError("give --data ROOT (a dataset split) or a VIDEO file")
    from harness.data.datasets import open_dataset
    from harness.stages.predict import predict_videos
    from submissions.formats import write_submission

    layout, cache = open_dataset(args.data, args.cache)
    videos = [e.name for e in layout.splits[args.split]]
    if not videos:
        raise HarnessError(f"{args.data}: the {args.split} split has no videos")
    preds = predict_videos(args.run, cache, videos)
    sample = layout.sample_file if args.split == "test" else None
    log: list[str] = []
    write_submission(args.out, preds, sample, pad=args.pad, log=log)
    for line in log:
        console.print(f"[yellow]note[/]: {line}")
    frames = sum(p.shape[0] for p in preds.values())
    console.print(f"{len(preds)} video(s), {frames} frames -> {Path(args.out)}")
    return 0
