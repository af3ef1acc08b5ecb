"""The challenge baseline row of Tables I and IV: a per-frame ResNet on face crops, trained and scored like stage 2.

The 8th ABAW baseline (Kollias et al.) is a ResNet-50 with ImageNet weights and a linear valence/arousal head,
applied to each frame's face crop on its own: no audio, no temporal context. Per fold:

- training frames: the labelled frames with a face crop of the fold's training videos (the videos reserved for
  stage 1 are left out, as stage 2 leaves them out), `baseline.frames_per_video` evenly spaced per video; a random
  horizontal flip; ImageNet's per-channel normalisation (what torchvision's weights were trained with);
- the CCC loss on valence and arousal through `harness.train.loop.fit` (DeepSpeed, as every stage); the best epoch by
  P_VA on `baseline.val_frames_per_video` labelled frames per validation video;
- the best weights predict EVERY frame of the validation videos (and of the test list on fold 0): a frame with a
  crop from its crop; a frame without a face gets the head's prediction for the mean pooled feature of the
  training crops, as stage 2 gives such a frame the training mean as its visual feature ("an average face rather
  than an extreme one");
- the scorer of stage 2 (one CCC over all annotated frames of a partition) and the files of a stage-2 run
  (`predictions/validation.npz`, `predictions/test.npz`, `predictions/submission.csv` on fold 0, the final record),
  so the tables, `scores.json` and per-video statistics read a baseline run as they read any other.

A run folder whose final record has the same baseline hash (the `baseline` section, the seed, the fold's videos)
is reused, so an interrupted `harness folds` or `harness ablate` continues past a finished baseline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from core.errors import HarnessError
from core.hashing import stable_hash
from harness.config import BASELINE_ROW, Config
from harness.data.datasets import (
    CacheLike,
    FrameDataset,
    FrameItem,
    crop_files,
    labelled_frames,
    load_labels,
    read_crop,
)
from harness.data.features import frame_count
from harness.data.splits import Fold, fold_split, stage1_reserved
from harness.folders.run import RunDir
from harness.runtime.distributed import Strategy, current_strategy
from harness.stages.predict import module_forward, save_predictions
from harness.stages.skeleton import RunKey, StageInputs, StageResult, TrainedStage, run_stage
from harness.stages.stage2 import score_record
from harness.train.loop import FitResult, Forward, fit
from harness.train.precision import set_threads
from harness.train.weights import load_weights
from preprocessing.affwild2 import AffWild2Layout
from preprocessing.cache import FeatureCache
from submissions.scoring import ScoreReport
from submissions.scoring import score_predictions as score_report

__all__ = ["BASELINE_ROW", "BaselineError", "build_baseline", "train_baseline", "untrained_baseline"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""torchvision's ImageNet normalisation, which its ResNet-50 weights expect (kept with random weights too)."""

BASELINE_VERSION = 1
"""Bumped when the baseline's training or prediction changes, so finished runs are not reused."""


class BaselineError(HarnessError):
    """The baseline cannot run: a missing or wrong weights file, no training frames, a video of unknown length."""


def crop_transform(img_size: int, hflip: float, train: bool) -> Any:
    """torchvision v2 transform of a uint8 (3, H, W) crop to an ImageNet-normalised float (3, S, S) image.

    Args:
        img_size: output side S.
        hflip: probability of a horizontal flip (training only).
        train: with the flip.
    """
    from torchvision.transforms import v2

    steps: list[Any] = [v2.Resize((img_size, img_size), antialias=True)]
    if train and hflip > 0:
        steps.append(v2.RandomHorizontalFlip(hflip))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD))]
    return v2.Compose(steps)


def baseline_hash(cfg: Config, fold: Fold) -> str:
    """Hash of everything a baseline run depends on: the `baseline` section, the seed, the fold's videos.

    Args:
        cfg: the config.
        fold: the fold.
    """
    d = cfg.to_dict()
    return stable_hash({"baseline": d["baseline"], "seed": d["seed"], "fold": fold.identity(),
                        "version": BASELINE_VERSION})  # fmt: skip


def build_baseline(cfg: Config) -> nn.Module:
    """The baseline network, seeded; with `baseline.weights`, its backbone loaded from torchvision's ImageNet file.

    Args:
        cfg: the config.

    Raises:
        BaselineError: the weights file is missing.
        CheckpointError: the file is not torchvision's resnet50 state dict (named in the message).
    """
    from models.baseline import load_imagenet_weights
    from models.checkpoints import read_state_dict
    from models.registry import build_model

    torch.manual_seed(cfg.seed)  # the same initial weights in every process and every run of this config
    model = build_model(cfg.baseline_config())
    if cfg.baseline.weights is not None:
        path = Path(cfg.baseline.weights)
        if not path.is_file():
            raise BaselineError(
                f"baseline.weights: {path} not found; put torchvision's ImageNet resnet50 weights file there "
                "(resnet50-11ad3fa6.pth or resnet50-0676ba61.pth, nothing is downloaded), or set "
                "baseline.weights=null to train the baseline from random initialisation"
            )
        load_imagenet_weights(model, read_state_dict(path), source=str(path))  # type: ignore[arg-type]
    return model


def frame_loss(model: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """1 - mean(CCC_V, CCC_A) over a batch of frames.

    Args:
        model: the engine (or module): `(B, 3, S, S) -> (B, 2)`.
        batch: a `FrameDataset` batch on the device.
    """
    from models.losses import ccc_loss

    return ccc_loss(model(batch["image"]).float(), batch["labels"].float())


class _Images(Dataset):
    """Face crops by path through a transform."""

    def __init__(self, paths: Sequence[str], transform: Any):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(read_crop(self.paths[i]))


def forward_paths(forward: Forward, paths: Sequence[str], transform: Any, batch: int, workers: int) -> np.ndarray:
    """(len(paths), 2) predictions of the crops at `paths`, in order.

    Args:
        forward: `(B, 3, S, S) -> (B, 2)` float32 CPU tensor.
        paths: crop files.
        transform: the evaluation transform.
        batch: frames per forward.
        workers: DataLoader workers decoding the crops.
    """
    if not paths:
        return np.zeros((0, 2), dtype=np.float64)
    loader = DataLoader(_Images(paths, transform), batch_size=batch, shuffle=False, num_workers=workers)
    return np.concatenate([forward(imgs).numpy() for imgs in loader]).astype(np.float64)


@torch.no_grad()
def no_face_prediction(model: nn.Module, paths: Sequence[str], transform: Any, batch: int, workers: int) -> np.ndarray:
    """The (2,) prediction for a frame without a face: the head applied to the mean training feature.

    Stage 2 gives such a frame the training mean as its visual feature; here the pooled ResNet feature of the
    training crops, averaged, goes through the valence/arousal head. (The network on the mean crop, a blur, is
    no average face: it gave V/A near +0.75 on the demo corpus.)

    Args:
        model: the trained network (`forward_features`, `head`), in eval mode on the CPU.
        paths: the training crops.
        transform: the evaluation transform.
        batch: crops per forward.
        workers: DataLoader workers.

    Raises:
        BaselineError: without any crop.
    """
    total: torch.Tensor | None = None
    for imgs in DataLoader(_Images(paths, transform), batch_size=batch, shuffle=False, num_workers=workers):
        s = model.forward_features(imgs).to(torch.float64).sum(0)  # (F,)
        total = s if total is None else total + s
    if total is None:
        raise BaselineError("the no-face prediction needs at least one training crop")
    mean = (total / len(paths)).float()[None]  # (1, F)
    return torch.tanh(model.head(mean))[0].double().numpy()  # (2,)


def predict_frames(forward: Forward, entries: Sequence[Any], lengths: Mapping[str, int], transform: Any,
                   fill: np.ndarray, batch: int, workers: int) -> dict[str, np.ndarray]:  # fmt: skip
    """Every frame of each video: from its face crop where there is one, else `fill`.

    Args:
        forward: `(B, 3, S, S) -> (B, 2)` float32 CPU tensor.
        entries: `VideoEntry`s (`name`, `crops_dir`).
        lengths: video -> frames to predict.
        transform: the evaluation transform.
        fill: (2,) prediction for frames without a face.
        batch: frames per forward.
        workers: DataLoader workers.

    Returns:
        video -> (N, 2) float64 in [-1, 1].
    """
    where: list[tuple[str, int]] = []
    paths: list[str] = []
    for e in entries:
        present = crop_files(e.crops_dir)
        for i in range(lengths[e.name]):
            if f"{i + 1:05d}.jpg" in present:
                where.append((e.name, i))
                paths.append(str(e.crops_dir / f"{i + 1:05d}.jpg"))
    outs = forward_paths(forward, paths, transform, batch, workers)
    preds = {e.name: np.tile(np.asarray(fill, dtype=np.float64), (lengths[e.name], 1)) for e in entries}
    for (video, i), p in zip(where, outs, strict=True):
        preds[video][i] = p
    return {k: np.clip(v, -1.0, 1.0) for k, v in preds.items()}


def predict_videos(cfg: Config, model: nn.Module, items: Sequence[FrameItem], entries: Sequence[Any],
                   lengths: Mapping[str, int]) -> tuple[dict[str, np.ndarray], np.ndarray]:  # fmt: skip
    """Every frame of `entries` by the baseline network (eval mode): from its face crop where there is one, else the
    no-face prediction made from the training crops `items` (`predict_frames`, `no_face_prediction`).

    Returns:
        (video -> (N, 2) predictions, the (2,) no-face prediction).
    """
    # Frames per forward as stage 1's feature extraction: small convolutions run faster on larger batches.
    forward = module_forward(model)  # puts the model in eval mode, which the no-face prediction needs too
    transform = crop_transform(cfg.baseline_config().img_size, 0.0, False)
    batch, workers = cfg.stage1.extract_batch, cfg.runtime.num_workers
    fill = no_face_prediction(model, [it.path for it in items], transform, batch, workers)
    return predict_frames(forward, entries, lengths, transform, fill, batch, workers), fill


def _frame_evaluator(items: Sequence[FrameItem], transform: Any, batch: int) -> Callable[[Forward], dict[str, float]]:
    """The per-epoch validation: CCC over the sampled labelled validation frames."""
    from submissions.metrics import score_va

    labels = np.array([[it.valence, it.arousal] for it in items], dtype=np.float64)
    paths = [it.path for it in items]

    def evaluate(forward: Forward) -> dict[str, float]:
        # In-process decoding: a worker pool per epoch would cost more than these few frames.
        s = score_va(labels, forward_paths(forward, paths, transform, batch, 0))
        return {"ccc_v": s.ccc_v, "ccc_a": s.ccc_a, "p_va": s.p_va, "frames": float(s.frames)}

    return evaluate


def _lengths(layout: AffWild2Layout, cache: FeatureCache, names: Sequence[str]) -> dict[str, int | None]:
    return {n: frame_count(layout.entry(n), cache) for n in names}


def train_baseline(cfg: Config, layout: AffWild2Layout, cache: CacheLike, fold: int | Fold, run_dir: str | Path, *,
                   resume: bool = False, force: bool = False,
                   progress: bool | None = None, strategy: Strategy | None = None) -> StageResult:  # fmt: skip
    """Train, select, predict and score the challenge baseline on one fold (`Baseline` in the stage skeleton; see
    the module docstring).

    Args:
        cfg: the config (its `baseline` section).
        layout: the dataset layout (`AffWild2Layout`): splits, crops, annotation files.
        cache: the feature cache (only its manifests' frame counts are read).
        fold: fold index (0 = official split) or a `Fold`.
        run_dir: the run folder.
        resume: continue an interrupted run from its last checkpoint.
        force: train even when the folder holds a finished run of this config.
        progress: rich progress bars (default: the config's `runtime.progress`).
        strategy: the run's processes (None: this process's own, `harness.runtime.distributed.current_strategy`).

    Raises:
        BaselineError: no training frame, a validation video without a known length, a missing weights file.
    """
    strategy = current_strategy(strategy)
    set_threads(cfg.runtime.threads)
    if isinstance(fold, int):
        fold = fold_split(layout, fold, cfg.experiment.k, cfg.experiment.fold_seed, stage1_reserved(layout, cfg))
    show = cfg.runtime.progress if progress is None else progress
    return run_stage(Baseline(StageInputs(cfg, layout, cache, fold, RunDir(run_dir), resume, show, strategy)),
                     force=force)


class Baseline(TrainedStage):
    """The challenge baseline in the stage skeleton: labelled face crops, the per-frame network, its record."""

    def __init__(self, inputs: StageInputs) -> None:
        super().__init__(inputs)
        self.items: list[FrameItem] = []
        self.val_items: list[FrameItem] = []
        self.model: nn.Module | None = None
        self.train_s = 0.0

    def key(self) -> RunKey:
        return RunKey(run_hash=baseline_hash(self.inputs.cfg, self.inputs.fold))

    def prepare(self) -> None:
        s = self.inputs
        b = s.cfg.baseline
        self.items = labelled_frames([s.layout.entry(v) for v in s.fold.train], b.frames_per_video)
        if not self.items:
            raise BaselineError(f"{s.layout.root}: no training frame of fold {s.fold.index} has both a face crop and "
                                "a label")  # fmt: skip
        self.val_items = labelled_frames([s.layout.entry(v) for v in s.fold.val], b.val_frames_per_video)
        self.model = build_baseline(s.cfg)

    def fit(self) -> FitResult:
        s = self.inputs
        b, size = s.cfg.baseline, s.cfg.baseline_config().img_size
        assert self.model is not None  # prepare() built it
        t0 = time.perf_counter()
        evaluate = (_frame_evaluator(self.val_items, crop_transform(size, 0.0, False), s.cfg.stage1.extract_batch)
                    if len(self.val_items) >= 2 else None)  # fmt: skip
        result = fit(self.model, FrameDataset(self.items, crop_transform(size, b.hflip, True)), frame_loss, b.loop,
                     s.cfg.deepspeed, s.run, seed=s.cfg.seed, evaluate=evaluate, resume=s.resume,
                     num_workers=s.cfg.runtime.num_workers, progress=s.progress,
                     label=f"baseline fold {s.fold.index}", strategy=s.strategy,
                     engine=s.cfg.runtime.engine)  # fmt: skip
        self.train_s = time.perf_counter() - t0
        return result

    def finish(self, result: FitResult) -> dict[str, Any]:
        s = self.inputs
        return _finish(s.cfg, s.layout, s.cache, s.fold, s.run, self.items, self.key().run_hash or "",
                       {"best_epoch": result.best_epoch, "frames": len(self.items), "val_frames": len(self.val_items),
                        "init_s": round(result.init_s, 3), "step_s": round(result.step_s, 5),
                        "steps_per_epoch": result.steps_per_epoch, "optimizer": result.extra.get("optimizer"),
                        "train_s": round(self.train_s, 1)})  # fmt: skip


def _finish(cfg: Config, layout: AffWild2Layout, cache: FeatureCache, fold: Fold, run: RunDir,
            items: Sequence[FrameItem], h: str,
            more: Mapping[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Predict every frame with the best weights, score, write predictions and the final record (rank 0)."""
    from models.registry import build_model
    from submissions.formats import write_submission

    t0 = time.perf_counter()
    model = build_model(cfg.baseline_config())
    model.load_state_dict(load_weights(run.best_weights))
    notes: list[str] = []
    val_len = _lengths(layout, cache, fold.val)
    unknown = [v for v, n in val_len.items() if n is None]
    if unknown:
        raise BaselineError(f"validation video(s) {', '.join(unknown)}: no frame count (no cache manifest, "
                            "annotation or crop)")  # fmt: skip
    lengths = {v: int(n) for v, n in val_len.items() if n is not None}
    test_len = _lengths(layout, cache, fold.test)
    test = [v for v in fold.test if test_len[v] is not None]
    if len(test) < len(fold.test):
        notes.append(f"{len(fold.test) - len(test)} test video(s) have no known frame count and were not predicted")
    lengths.update({v: int(test_len[v]) for v in test})  # type: ignore[arg-type]
    preds, fill = predict_videos(cfg, model, items, [layout.entry(v) for v in [*fold.val, *test]], lengths)
    val_preds = {v: preds[v] for v in sorted(fold.val)}
    val_labels = {v: load_labels(layout.entry(v).annotation, lengths[v]) for v in val_preds}
    save_predictions(run.validation_predictions, val_preds)
    val = score_record(val_preds, val_labels)
    test_score = None
    if test:
        test_preds = {v: preds[v] for v in test}
        save_predictions(run.test_predictions, test_preds)
        entries = [layout.entry(v) for v in test]
        if all(e.annotation is not None for e in entries):
            labels = {e.name: load_labels(e.annotation, lengths[e.name]) for e in entries}
            test_score = score_record(test_preds, labels)
        if len(test) == len(fold.test) and getattr(layout, "sample_file", None) is not None:
            log: list[str] = []
            write_submission(run.submission_file, test_preds, layout.sample_file, pad=True, log=log)
            notes.extend(log)
    crops = {v: crop_files(layout.entry(v).crops_dir) for v in lengths}
    face = sum(f"{i + 1:05d}.jpg" in crops[v] for v, n in lengths.items() for i in range(n))
    record = {
        "config_hash": h,
        "fold": fold.index,
        "model": BASELINE_ROW,
        "network": cfg.baseline.name,
        "inputs": "face crops, one frame at a time",
        "weights": str(Path(cfg.baseline.weights).resolve()) if cfg.baseline.weights else None,
        "val": val,
        "test": test_score,
        "notes": notes,
        "no_face_prediction": [round(float(x), 6) for x in fill],
        "predicted_frames": int(sum(lengths.values())),
        "predicted_from_crop": int(face),
        "predict_s": round(time.perf_counter() - t0, 1),
        **more,
    }
    return run.write_final(record)


@torch.no_grad()
def untrained_baseline(cfg: Config, layout: AffWild2Layout, cache: FeatureCache, fold: int | Fold) -> ScoreReport:
    """The baseline network at its initialisation (seeded with `cfg.seed`, never trained), scored on the fold's test
    videos the way a trained baseline is: the level a trained baseline row has to beat to show that it learnt.

    Args:
        cfg: the config (its `baseline` section and seed).
        layout: the dataset layout (`AffWild2Layout`).
        cache: the feature cache (frame counts).
        fold: fold index (0 = official split) or a `Fold`; its test videos must carry annotations.

    Raises:
        BaselineError: the fold has no annotated test video, or no training crop.
    """
    if isinstance(fold, int):
        fold = fold_split(layout, fold, cfg.experiment.k, cfg.experiment.fold_seed, stage1_reserved(layout, cfg))
    entries = [layout.entry(v) for v in fold.test]
    lengths = _lengths(layout, cache, fold.test)
    entries = [e for e in entries if e.annotation is not None and lengths[e.name] is not None]
    if not entries:
        raise BaselineError(f"{layout.root}: fold {fold.index} has no annotated test video of known length")
    items = labelled_frames([layout.entry(v) for v in fold.train], cfg.baseline.frames_per_video)
    if not items:
        raise BaselineError(f"{layout.root}: no training frame of fold {fold.index} has both a face crop and a label")
    torch.manual_seed(cfg.seed)
    model = build_baseline(cfg).eval()
    n = {e.name: int(lengths[e.name]) for e in entries}  # type: ignore[arg-type]
    preds, _ = predict_videos(cfg, model, items, entries, n)
    labels = {e.name: load_labels(e.annotation, n[e.name]) for e in entries}
    return score_report(preds, labels, "untrained baseline")
