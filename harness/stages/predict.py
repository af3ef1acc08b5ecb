"""Whole-video prediction: sliding windows, overlapping predictions averaged per frame, every frame covered.

Windows follow `harness.data.windows.window_starts` (stride windows plus one aligned to the end); each frame's
prediction is the mean over the windows that contain it, clipped to [-1, 1]. Frames without a face still get a
prediction: their visual row is the training mean (see `harness.data.datasets`), and the temporal model fills them from
the neighbouring frames and the audio.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.atomic import atomic_open, atomic_write_text
from core.errors import HarnessError, printable
from core.ownership import claim_folder
from core.safe_read import read_json, read_npz
from harness.config import FINETUNED_VISUAL, UNFINETUNED_VISUAL, Config, load_config
from harness.data.datasets import CacheLike, NormStats, load_video_streams, normalised_streams
from harness.data.features import encode_videos, feature_hash
from harness.data.windows import window_starts
from harness.folders.cache import PreprocessDir
from harness.folders.run import ENCODER_KEY, VIDEO_WORK_DIR, RunDir
from harness.stages.preprocess import PreprocessConfig, preprocess
from harness.train.precision import set_threads
from harness.train.weights import load_weights

Forward = Callable[..., torch.Tensor]


class PredictError(HarnessError):
    """A run folder or input that cannot be predicted from."""


def average_windows(n: int, starts: Sequence[int], length: int, window_preds: np.ndarray) -> np.ndarray:
    """Per-frame mean of overlapping window predictions.

    Args:
        n: frames in the video.
        starts: window starts.
        length: window length (a window covers frames [start, min(start + length, n))).
        window_preds: (W, length, 2) predictions; rows past the video's end are ignored.

    Returns:
        (n, 2) float64.

    Raises:
        PredictError: a frame is covered by no window.
    """
    total = np.zeros((n, 2), dtype=np.float64)
    count = np.zeros(n, dtype=np.int64)
    for s, p in zip(starts, window_preds, strict=True):
        e = min(s + length, n)
        total[s:e] += p[: e - s]
        count[s:e] += 1
    if n and count.min() == 0:
        raise PredictError(f"{int((count == 0).sum())} frame(s) covered by no window")
    return total / np.maximum(count, 1)[:, None]


def predict_arrays(forward: Forward, visual: np.ndarray, audio: np.ndarray, length: int, stride: int,
                   batch: int = 16) -> np.ndarray:  # fmt: skip
    """Predict every frame of one video from its normalised streams.

    Args:
        forward: `(visual (B, L, Dv), audio (B, L, Da), pad_mask (B, L)) -> (B, L, 2)` float32 CPU tensor. A
            `ModuleForward` of a temporal model gets all windows of a video at least one window long at once
            (`ModuleForward.windows`: the same predictions, the windows' shared work done once).
        visual: (N, Dv) normalised visual features.
        audio: (N, Da) normalised audio features.
        length: window length.
        stride: window stride.
        batch: windows per forward.

    Returns:
        (N, 2) float64 predictions clipped to [-1, 1].
    """
    N = visual.shape[0]
    if audio.shape[0] != N:
        raise PredictError(f"visual has {N} frames, audio {audio.shape[0]}")
    starts = window_starts(N, length, stride)
    if not starts:
        return np.zeros((0, 2))
    if isinstance(forward, ModuleForward) and forward.shares_windows(N, length):
        # The same predictions, the work that overlapping windows share done once (`ModuleForward.windows`).
        preds = average_windows(N, starts, length, forward.windows(visual, audio, starts, length, batch))
        return np.clip(preds, -1.0, 1.0)
    outs = []
    for i in range(0, len(starts), batch):
        chunk = starts[i : i + batch]
        B, L = len(chunk), length
        v = np.zeros((B, L, visual.shape[1]), np.float32)
        a = np.zeros((B, L, audio.shape[1]), np.float32)
        pad = np.ones((B, L), dtype=bool)
        for j, s in enumerate(chunk):
            e = min(s + L, N)
            v[j, : e - s] = visual[s:e]
            a[j, : e - s] = audio[s:e]
            pad[j, : e - s] = False
        out = forward(torch.from_numpy(v), torch.from_numpy(a), torch.from_numpy(pad))  # (B, L, 2)
        outs.append(out.detach().float().cpu().numpy())
    preds = average_windows(N, starts, length, np.concatenate(outs))
    return np.clip(preds, -1.0, 1.0)


class ModuleForward:
    """A `Forward` over a plain module in eval mode under no_grad (what `module_forward` returns).

    Over a temporal model (`models.temporal.AVTemporalModel`), `predict_arrays` hands it a whole video's windows
    at once (`windows`), so the model computes what overlapping windows share once; the predictions are the
    per-window calls' own.
    """

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu"):
        """Put the model in eval mode on the device.

        Args:
            model: the module.
            device: where it runs; inputs are moved there and outputs back to the CPU.
        """
        self.model = model.eval().to(device)
        self.device = device

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(*[t.to(self.device) for t in tensors]).float().cpu()

    def shares_windows(self, n: int, length: int) -> bool:
        """Whether `windows` serves a video of n frames: a temporal model, and every window inside the video."""
        from models.temporal import AVTemporalModel

        return isinstance(self.model, AVTemporalModel) and n >= length

    def windows(self, visual: np.ndarray, audio: np.ndarray, starts: Sequence[int], length: int,
                batch: int) -> np.ndarray:  # fmt: skip
        """The windows' predictions from the temporal model's `forward_windows` (under inference_mode).

        Args:
            visual: (N, Dv) normalised visual features.
            audio: (N, Da) normalised audio features.
            starts: window starts, each window inside the video.
            length: window length.
            batch: windows per Transformer call.

        Returns:
            (W, length, 2) float32, equal to calling this forward on the windows.
        """
        v = torch.from_numpy(np.ascontiguousarray(visual, dtype=np.float32)).to(self.device)  # (N, Dv)
        a = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).to(self.device)  # (N, Da)
        with torch.inference_mode():
            return self.model.forward_windows(v, a, starts, length, batch).float().cpu().numpy()  # (W, L, 2)


def module_forward(model: nn.Module, device: torch.device | str = "cpu") -> ModuleForward:
    """A `Forward` over a plain module in eval mode under no_grad (see `ModuleForward`)."""
    return ModuleForward(model, device)


def load_trained(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[Config, nn.Module, NormStats]:
    """The config, the best-epoch temporal model (eval mode) and the normalisation statistics of a stage-2 run.

    Args:
        run_dir: a finished (or at least one-epoch) stage-2 run folder.
        device: where to put the model.

    Raises:
        PredictError: the folder lacks config.yaml, best.safetensors or norm_stats.npz.
    """
    from models.checkpoints import load_state
    from models.registry import build_model

    run = RunDir(run_dir)
    for f in (run.config_file, run.best_weights, run.norm_stats_file):
        if not f.is_file():
            raise PredictError(f"{run.path}: not a trained stage-2 run folder ({f.name} is missing)")
    cfg = load_config(run.config_file)
    set_threads(cfg.runtime.threads)
    model = build_model(cfg.temporal_config())
    try:
        load_state(model, load_weights(run.best_weights), source=str(run.best_weights), strict=True)
    except (RuntimeError, ValueError, KeyError) as exc:  # shapes or names of another model
        raise PredictError(f"{run.best_weights}: does not fit the run's model ({_one_line(exc)})") from None
    stats = load_norm_stats(run.norm_stats_file)
    return cfg, model.eval().to(device), stats


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


def load_norm_stats(path: Path) -> NormStats:
    """A run's normalisation statistics: a bounded .npz of plain float arrays (never pickled objects).

    Raises:
        HarnessError: the file is not a regular file, too large, not an .npz, holds object arrays or lacks a key
            (`core.safe_read.ReadError`, one located line).
    """
    # Bounded and checked member by member (core.safe_read.read_npz): object arrays are refused, nothing is run.
    return NormStats.load(path)


def predict_videos(run_dir: str | Path, cache: CacheLike, videos: Iterable[str], device: str = "cpu",
                   batch: int | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """Predict every frame of each video from the cached features with a trained stage-2 run.

    Args:
        run_dir: the stage-2 run folder.
        cache: the feature cache holding the videos' features.
        videos: video names.
        device: torch device.
        batch: windows per forward (default: the run's `runtime.eval_batch`).

    Returns:
        video -> (N, 2) float64 valence/arousal in [-1, 1], N = the video's cached frames.
    """
    cfg, model, stats = load_trained(run_dir, device)
    forward = module_forward(model, device)
    out = {}
    for v in videos:
        visual, audio = load_video_streams(cache, v, cfg.features, stats)
        out[v] = predict_arrays(forward, visual, audio, cfg.windows.length, cfg.windows.stride,
                                batch or cfg.runtime.eval_batch)  # fmt: skip
    return out


def predict_streams(run_dir: str | Path, arrays: dict[str, np.ndarray], device: str = "cpu") -> np.ndarray:
    """Predict one video from raw (un-normalised) feature arrays, as a single-video pipeline produces them.

    Args:
        run_dir: the stage-2 run folder.
        arrays: the run's visual feature, `visual_mask` and its audio features, each (N, ...).
        device: torch device.
    """
    cfg, model, stats = load_trained(run_dir, device)
    visual, audio = normalised_streams(arrays, cfg.features, stats)
    return predict_arrays(module_forward(model, device), visual, audio, cfg.windows.length, cfg.windows.stride,
                          cfg.runtime.eval_batch)  # fmt: skip


def save_predictions(path: str | Path, preds: dict[str, np.ndarray]) -> Path:
    """Per-video predictions as one .npz (keys = video names), atomically."""
    with atomic_open(path, "wb") as fh:
        np.savez(fh, **{k: np.asarray(v, dtype=np.float32) for k, v in preds.items()})
    return Path(path)


def load_predictions(path: str | Path) -> dict[str, np.ndarray]:
    """Read what `save_predictions` wrote (plain arrays only: `np.load` refuses pickled objects).

    Raises:
        PredictError: the file is not a readable .npz of arrays.
    """
    arrays = read_npz(path, "prediction file")
    for video, arr in arrays.items():
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.dtype.kind != "f":
            raise PredictError(f"{printable(str(path))}: not a file of predictions: {printable(video)!r} holds a "
                               f"{arr.dtype} array of shape {arr.shape}, not (frames, 2) floats")
    return {k: v.astype(np.float64) for k, v in arrays.items()}


def write_video_outputs(out_dir: str | Path, video: str, preds: np.ndarray, fps: float | None = None) -> list[Path]:
    """Per-frame CSV (`frame,time_s,valence,arousal`) and a PNG plot of one video's predictions.

    Args:
        out_dir: output folder.
        video: name used for the files.
        preds: (N, 2) predictions.
        fps: frame rate for the time column and axis (None: frame numbers only).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    # A user's own `<video>.csv` in a folder given with --force is never replaced (core.ownership).
    owned = claim_folder(out, (f"{video}.csv", f"{video}.png"), what="video prediction folder", force=True)
    frames = np.arange(1, preds.shape[0] + 1)
    t = (frames - 1) / fps if fps else frames.astype(float)
    lines = ["frame,time_s,valence,arousal"] + [
        f"{f},{tt if fps else float('nan'):.3f},{v:.6f},{a:.6f}" for f, tt, (v, a) in zip(frames, t, preds, strict=True)
    ]
    csv = atomic_write_text(out / f"{video}.csv", "\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(10, 3.2))
    ax.plot(t, preds[:, 0], label="valence", lw=1.2)
    ax.plot(t, preds[:, 1], label="arousal", lw=1.2)
    ax.set_ylim(-1.05, 1.05)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("time (s)" if fps else "frame")
    ax.set_title(video)
    ax.legend(loc="upper right")
    fig.tight_layout()
    png = out / f"{video}.png"
    with atomic_open(png, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    owned.note(csv.name, png.name)
    return [csv, png]


def find_encoder_weights(run_dir: str | Path, visual: str = FINETUNED_VISUAL) -> Path | None:
    """The stage-1 ViT weights behind a stage-2 run: recorded in its summary, else a `stage1/` folder beside it.

    Args:
        run_dir: the stage-2 run folder.
        visual: the visual features the run reads (its `features.visual`): the fine-tuned encoder made `visual`,
            the encoder before fine-tuning (`encoder.safetensors`) made `visual_mae`.
    """
    run = Path(run_dir)
    summary = RunDir(run).summary_file
    if summary.is_file():
        recorded = read_json(summary, "run summary").get(ENCODER_KEY)
        if isinstance(recorded, str) and recorded and Path(recorded).is_file():
            return Path(recorded)
    for up in (run, *run.parents[:3]):
        p = RunDir(up).stage1.encoder_that_made(visual != UNFINETUNED_VISUAL)
        if p.is_file():
            return p
    return None


def predict_video_file(run_dir: str | Path, video: str | Path, out_dir: str | Path,
                       encoder_weights: str | Path | None = None, vggish: str | None = None,
                       detector: str = "scrfd", faces: bool = True) -> tuple[np.ndarray, list[Path]]:  # fmt: skip
    """Predict a raw video end to end: faces and audio features (`harness.stages.preprocess`), CLS features with the
    run's stage-1 encoder, the temporal model; writes `<out>/<video>.csv` and `<out>/<video>.png`.

    Args:
        run_dir: the stage-2 run folder.
        video: the raw video file.
        out_dir: output folder (intermediate crops and features go to `<out>/work/`).
        encoder_weights: the stage-1 ViT weights (default: `find_encoder_weights(run_dir)`).
        vggish: VGGish weights, when the run's features include vggish.
        detector: face detector name.
        faces: detect faces; without, every frame counts as faceless (audio and the training-mean visual row).

    Returns:
        ((N, 2) predictions, written files).
    """
    from preprocessing.affwild2 import VideoEntry
    from preprocessing.cache import FeatureCache

    video = Path(video)
    if not video.is_file():
        raise PredictError(f"{video}: no such video file")
    cfg = load_config(RunDir(run_dir).config_file) if RunDir(run_dir).config_file.is_file() else None
    if cfg is None:
        raise PredictError(f"{run_dir}: not a run folder (config.yaml is missing)")
    if "vggish" in cfg.features.audio and not vggish:
        raise PredictError(f"{run_dir}: the run uses VGGish features; pass the VGGish weights (--vggish PATH)")
    weights = Path(encoder_weights) if encoder_weights else find_encoder_weights(run_dir, cfg.features.visual)
    if weights is None or not weights.is_file():
        raise PredictError(f"{run_dir}: cannot find the stage-1 encoder weights; pass --encoder PATH "
                           "(stage1/finetune/best.safetensors, or stage1/encoder.safetensors for visual_mae "
                           "features, of the run that made its features)")  # fmt: skip
    from models.registry import build_model

    vit = build_model(cfg.vit_config())
    try:
        # Read before the slow preprocessing, so a corrupt or foreign encoder file is named at once.
        vit.load_state_dict(load_weights(weights))
    except (RuntimeError, ValueError, KeyError) as exc:  # a readable file of another model
        raise PredictError(f"{weights}: not the weights of the run's stage-1 encoder ({_one_line(exc)})") from None
    work = Path(out_dir) / VIDEO_WORK_DIR
    results = preprocess(video, work, PreprocessConfig(faces=faces, vggish=vggish, detector=detector), strict=True)
    fps = results[0].fps if results else None
    name = results[0].video if results else video.stem  # the safe name preprocess gave it
    crops = PreprocessDir(work).subject_crops(name)
    entry = VideoEntry(name=name, raw_video=video, crops_dir=crops if crops.is_dir() else None, annotation=None,
                       person=None)  # fmt: skip
    with FeatureCache(PreprocessDir(work).features) as cache:
        encode_videos(cfg, [entry], cache, {cfg.features.visual: (vit, feature_hash(cfg, weights=weights))})
        arrays = cache.load(name, [cfg.features.visual, "visual_mask", *cfg.features.audio])
    preds = predict_streams(run_dir, arrays)
    return preds, write_video_outputs(out_dir, name, preds, fps)
