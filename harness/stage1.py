"""Stage 1: the visual encoder (paper III.B) and its per-frame CLS features.

1. Encoder weights: the official MAE checkpoint when `encoder.checkpoint` is set (the paper's path), otherwise an
   MAE pre-trained here on the training videos' face crops (`stage1.mae`; no MAE weights are reachable offline).
2. Optionally (`stage1.extract_unfinetuned`, Table III's "MAE w/o FT"), CLS features of that encoder without
   fine-tuning, cached as `visual_mae`.
3. Hierarchical fine-tuning on labelled frames of the TRAINING videos only: patch embedding and the first
   `frozen_blocks` blocks frozen, the rest and a tanh V/A head trained with the CCC loss; frames labelled -5 are
   skipped; augmentation: random resized crop, horizontal flip, rotation, normalisation (mean 0.389, std 0.198).
   The best epoch by CCC on validation frames is kept.
4. CLS features of every frame of every video (train, validation, test) with the fine-tuned encoder, cached as
   `visual` (N, D) float32 with `visual_mask` (N,) bool (the `visual_mae` features of step 2 come from the same
   decoding pass). A frame without a face crop gets a zero row and
   mask False (stage 2 replaces it by the training mean, see `harness.data`).

Every step is skipped when its outputs exist with the same settings hash (the cache's config hash for features,
run folders' final records for training), so an interrupted stage 1 continues where it stopped.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from core.errors import HarnessError
from core.hashing import stable_hash
from harness.config import Config
from harness.data import (
    VISUAL_MASK,
    CacheLike,
    FrameDataset,
    crop_files,
    frame_transform,
    labelled_frames,
    read_crop,
)
from harness.distributed import Strategy, current_strategy
from harness.engine import FitResult, Forward, fit, load_weights, set_threads
from harness.fingerprint import platform_fingerprint
from harness.folds import stage1_reserved
from harness.progress import StepProgress
from harness.runs import RunDir

FEATURE_VERSION = 1
MASK_HASH = stable_hash({"feature": VISUAL_MASK, "version": FEATURE_VERSION})
"""`visual_mask` depends only on which crops exist, not on the encoder: one hash for every encoder."""


class Stage1Error(HarnessError):
    """Stage 1 cannot run (no training frames, a missing checkpoint)."""


@dataclass
class Stage1Result:
    """What stage 1 produced.

    Args:
        feature_hash: the cache config hash of the `visual` features it wrote.
        encoder_weights: the fine-tuned ViT's weights (None when skipped and not on disk).
        videos: videos whose features are in the cache.
        skipped: True when every feature was already cached with this hash.
        finetune_videos: the training videos fine-tuning learnt from (`stage1.reserve`: stage 2 leaves them out).
        finetune: the fine-tuning's best validation metrics.
        timings: seconds per step.
    """

    feature_hash: str
    encoder_weights: Path | None
    videos: list[str]
    skipped: bool
    finetune_videos: list[str] = field(default_factory=list)
    finetune: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def reserve_note(self) -> str:
        """One line naming the reserved videos fine-tuning read, for the commands to print."""
        return (f"stage 1 fine-tuned on {len(self.finetune_videos)} reserved training video(s), which stage 2 leaves "
                f"out: {', '.join(self.finetune_videos)}")  # fmt: skip


def feature_hash(cfg: Config, train_videos: list[str], unfinetuned: bool = False) -> str:
    """Hash of everything the stage-1 features depend on (encoder, stage-1 settings, seed, training videos).

    Args:
        cfg: the config.
        train_videos: the videos the encoder is trained on (fine-tuned on, unless `unfinetuned`).
        unfinetuned: the hash of `visual_mae` (no fine-tuning settings).
    """
    d = cfg.to_dict()
    s1 = {k: v for k, v in d["stage1"].items() if k not in ("extract_batch", "extract_unfinetuned", "enabled")}
    if unfinetuned:
        # Pre-training reads no labels and every training video: fine-tuning's settings do not change it.
        tuning = ("finetune", "frames_per_video", "val_frames_per_video", "reserve")
        s1 = {k: v for k, v in s1.items() if k not in tuning}
    return stable_hash({"encoder": d["encoder"], "stage1": s1, "seed": d["seed"], "train": sorted(train_videos),
                        "version": FEATURE_VERSION})  # fmt: skip


def finetune_entries(cfg: Config, layout: Any) -> list[Any]:
    """The training videos fine-tuning learns from: those `stage1.reserve` keeps from stage 2, or all of them."""
    keep = set(stage1_reserved(layout, cfg))
    return [e for e in layout.train if e.name in keep] if keep else list(layout.train)


def _all_entries(layout: Any) -> list[Any]:
    return [*layout.train, *layout.validation, *layout.test]


def frame_count(entry: Any, cache: CacheLike) -> int | None:
    """Frames of a video: the cache manifest's `n_frames`, else the annotation's rows, else the last crop's number.

    Args:
        entry: the `VideoEntry`.
        cache: the feature cache.
    """
    n = cache.manifest(entry.name).get("n_frames")
    if n is not None:
        return int(n)
    if entry.annotation is not None:
        from submissions.formats import read_annotation

        return int(read_annotation(entry.annotation).shape[0])
    names = [f for f in crop_files(entry.crops_dir) if f.endswith(".jpg") and f[:-4].isdigit()]
    return max(int(f[:-4]) for f in names) if names else None


def _frame_loss(model: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    from models.losses import ccc_loss

    return ccc_loss(model(batch["image"]).float(), batch["labels"].float())


def _mae_loss(model: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    loss, _pred, _mask = model(batch["image"])
    return loss.float()


def _frame_evaluator(items: FrameDataset, batch: int):
    from submissions.metrics import score_va

    def evaluate(forward: Forward) -> dict[str, float]:
        preds, labels = [], []
        for chunk in DataLoader(items, batch_size=batch, shuffle=False):
            preds.append(forward(chunk["image"]).numpy())
            labels.append(chunk["labels"].numpy())
        s = score_va(np.concatenate(labels), np.concatenate(preds))
        return {"ccc_v": s.ccc_v, "ccc_a": s.ccc_a, "p_va": s.p_va, "frames": float(s.frames)}

    return evaluate


def _vit(cfg: Config) -> nn.Module:
    from models.registry import build_model

    return build_model(cfg.vit_config())


def initial_encoder_state(
    cfg: Config, layout: Any, run: RunDir, resume: bool, progress: bool, strategy: Strategy | None = None
) -> dict[str, torch.Tensor]:
    """Encoder weights before fine-tuning: the MAE checkpoint, or an MAE pre-trained here (`run/mae`).

    Args:
        cfg: the config.
        layout: the dataset layout (training videos' crops).
        run: the stage-1 run folder.
        resume: continue an interrupted pre-training.
        progress: progress bars.
        strategy: the run's processes (None: this process's own).

    Raises:
        Stage1Error: the checkpoint file is missing, or there are no training frames.
    """
    from models.checkpoints import read_state_dict
    from models.registry import build_model

    if cfg.encoder.checkpoint is not None:
        path = Path(cfg.encoder.checkpoint)
        if not path.is_file():
            raise Stage1Error(
                f"encoder.checkpoint: {path} not found; download the official MAE ViT checkpoint there, or set "
                "encoder.checkpoint=null to pre-train an MAE on the training frames"
            )
        return read_state_dict(path)
    mae_run = run.sub("mae")
    h = feature_hash(cfg, [e.name for e in layout.train], unfinetuned=True)
    strategy = current_strategy(strategy)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.mae_config())
    if mae_run.finished_with(cfg, run_hash=h) is None:
        items = labelled_frames(layout.train, cfg.stage1.mae.frames_per_video)
        if not items:
            raise Stage1Error(f"{layout.root}: no training frame has both a face crop and a label")
        data = FrameDataset(items, frame_transform(cfg.stage1.augment, cfg.encoder.vit.img_size, train=True))
        if strategy.on_main:
            mae_run.prepare(cfg, resume=resume, run_hash=h)
        strategy.barrier()
        result = fit(model, data, _mae_loss, cfg.stage1.mae.loop, cfg.deepspeed, mae_run, seed=cfg.seed,
                     resume=resume, num_workers=cfg.runtime.num_workers, progress=progress, label="MAE",
                     strategy=strategy)  # fmt: skip
        if strategy.on_main:
            mae_run.write_final({"config_hash": h, "frames": len(data), "best_epoch": result.best_epoch,
                                 "init_s": result.init_s, "step_s": result.step_s})  # fmt: skip
        strategy.barrier()
        model = build_model(cfg.mae_config())
    if mae_run.best_weights.is_file():
        model.load_state_dict(load_weights(mae_run.best_weights))
    # else: zero epochs of pre-training: the randomly initialised encoder (seeded) is the starting point.
    return model.encoder_state_dict()


def encoder_from_state(cfg: Config, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """A valence/arousal ViT of the config with encoder weights from `state` (head new, decoder ignored)."""
    from models.checkpoints import load_state

    torch.manual_seed(cfg.seed)
    vit = _vit(cfg)
    report = load_state(vit, dict(state), source="encoder weights")
    if report.missing or report.unexpected:
        raise Stage1Error(f"encoder weights do not fit {cfg.encoder.name}: {report}")
    return vit


def finetune_encoder(cfg: Config, layout: Any, state: Mapping[str, torch.Tensor], run: RunDir, resume: bool,
                     progress: bool, strategy: Strategy | None = None,
                     ) -> tuple[Path, FitResult | None, dict[str, float]]:  # fmt: skip
    """Hierarchical fine-tuning on the training frames; returns (best weights file, fit result, best metrics).

    Args:
        cfg: the config.
        layout: the dataset layout.
        state: encoder weights to start from.
        run: the stage-1 run folder (`run/finetune` is used).
        resume: continue an interrupted fine-tuning.
        progress: progress bars.
        strategy: the run's processes (None: this process's own).
    """
    ft_run = run.sub("finetune")
    h = feature_hash(cfg, [e.name for e in finetune_entries(cfg, layout)])
    done = ft_run.finished_with(cfg, run_hash=h)
    if done is not None:
        return ft_run.best_weights, None, dict(done.get("val", {}))
    strategy = current_strategy(strategy)
    items = labelled_frames(finetune_entries(cfg, layout), cfg.stage1.frames_per_video)
    if not items:
        raise Stage1Error(f"{layout.root}: no training frame has both a face crop and a label")
    size = cfg.encoder.vit.img_size
    data = FrameDataset(items, frame_transform(cfg.stage1.augment, size, train=True))
    val_items = labelled_frames(layout.validation, cfg.stage1.val_frames_per_video)
    evaluate = None
    if len(val_items) >= 2:
        val = FrameDataset(val_items, frame_transform(cfg.stage1.augment, size, train=False))
        evaluate = _frame_evaluator(val, cfg.runtime.eval_batch)
    if strategy.on_main:
        ft_run.prepare(cfg, resume=resume, run_hash=h)
    strategy.barrier()
    model = encoder_from_state(cfg, state)
    result = fit(model, data, _frame_loss, cfg.stage1.finetune, cfg.deepspeed, ft_run, seed=cfg.seed,
                 evaluate=evaluate, resume=resume, num_workers=cfg.runtime.num_workers, progress=progress,
                 label="fine-tune", strategy=strategy)  # fmt: skip
    if strategy.on_main:
        ft_run.write_final({"config_hash": h, "frames": len(data), "val_frames": len(val_items),
                            "best_epoch": result.best_epoch, "val": result.best, "init_s": result.init_s,
                            "step_s": result.step_s})  # fmt: skip
    strategy.barrier()
    return ft_run.best_weights, result, result.best


@torch.no_grad()
def extract_features(cfg: Config, layout: Any, cache: Any, encoders: Mapping[str, tuple[nn.Module, str]],
                     progress: bool = False) -> list[str]:  # fmt: skip
    """CLS features of every frame of every video into the cache (and `visual_mask`), one decoding pass.

    Each crop is decoded and transformed once and fed to every encoder (Table III needs the encoder before and
    after fine-tuning: decoding dominates the cost on a CPU). A video is skipped for an encoder whose feature is
    cached with the same hash. Frames without a crop get a zero row and mask False.

    Args:
        cfg: the config.
        layout: the dataset layout (all splits).
        cache: the `FeatureCache` to write.
        encoders: feature name -> (ViT with `forward_features`, the feature's config hash).
        progress: a progress bar.

    Returns:
        the videos that have every feature afterwards.
    """
    size = cfg.encoder.vit.img_size
    transform = frame_transform(cfg.stage1.augment, size, train=False)
    for enc, _ in encoders.values():
        enc.eval()
    done: list[str] = []
    jobs: list[tuple[Any, int, dict[str, tuple[nn.Module, str]], list[int]]] = []
    for e in _all_entries(layout):
        n = frame_count(e, cache)
        if n is None:
            continue
        todo = {k: v for k, v in encoders.items() if not cache.has(e.name, k, v[1])}
        if not todo and cache.has(e.name, VISUAL_MASK, MASK_HASH):
            done.append(e.name)
            continue
        present = crop_files(e.crops_dir)
        jobs.append((e, n, todo, [i for i in range(n) if f"{i + 1:05d}.jpg" in present]))

    def save(job: tuple[Any, int, dict[str, tuple[nn.Module, str]], list[int]], feats: dict[str, np.ndarray]) -> None:
        e, n, todo, present = job
        mask = np.zeros(n, dtype=bool)
        mask[present] = True
        for k, (_, fhash) in todo.items():
            meta: dict[str, Any] = {"version": FEATURE_VERSION, "encoder": cfg.encoder.name,
                                    "frames_with_face": len(present)}  # fmt: skip
            if cache.manifest(e.name).get("n_frames") is None:
                meta["n_frames"] = n
            cache.save(e.name, k, feats[k], fhash, meta)
        cache.save(e.name, VISUAL_MASK, mask, MASK_HASH, {"version": FEATURE_VERSION})
        done.append(e.name)

    # One loader over every frame of every video, in video order: decoding runs in the worker processes while the
    # encoders run here; a video's features are saved (and freed) as soon as its last frame is through.
    items = [(j, i) for j, job in enumerate(jobs) for i in job[3]]
    paths = [str(jobs[j][0].crops_dir / f"{i + 1:05d}.jpg") for j, i in items]
    loader = DataLoader(_Crops(paths, transform), batch_size=cfg.stage1.extract_batch,
                        num_workers=cfg.runtime.num_workers)  # fmt: skip
    bar = StepProgress(f"features {', '.join(encoders)}", total=len(jobs), enabled=progress, unit="videos")
    left = [len(job[3]) for job in jobs]
    feats: dict[int, dict[str, np.ndarray]] = {}
    nxt = 0  # the next job not yet saved
    pos = 0
    for imgs in itertools.chain(loader, [None]):
        while nxt < len(jobs) and left[nxt] == 0:  # videos complete so far (also those without any crop)
            e, n, todo, _present = jobs[nxt]
            save(jobs[nxt], feats.pop(nxt, None) or {k: np.zeros((n, m.config.embed_dim), np.float32)
                                                     for k, (m, _) in todo.items()})  # fmt: skip
            nxt += 1
            bar.advance(info=e.name)
        if imgs is None:
            break
        batch_items = items[pos : pos + imgs.shape[0]]
        pos += imgs.shape[0]
        outs = {k: m.forward_features(imgs.to(next(m.parameters()).device)).float().cpu().numpy()
                for k, (m, _) in encoders.items()}  # fmt: skip
        for r, (j, i) in enumerate(batch_items):
            e, n, todo, _present = jobs[j]
            if j not in feats:
                feats[j] = {k: np.zeros((n, m.config.embed_dim), np.float32) for k, (m, _) in todo.items()}
            for k in todo:
                feats[j][k][i] = outs[k][r]
            left[j] -= 1
    bar.close()
    return done


class _Crops(Dataset):
    """Face crops by path through the evaluation transform (feature extraction)."""

    def __init__(self, paths: list[str], transform: Any):
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(read_crop(self.paths[i]))


def run_stage1(cfg: Config, layout: Any, cache: Any, run_dir: str | Path, *, resume: bool = False,
               progress: bool | None = None, strategy: Strategy | None = None) -> Stage1Result:  # fmt: skip
    """Stage 1 end to end: encoder weights, optional un-fine-tuned features, fine-tuning, features.

    Args:
        cfg: the config.
        layout: the dataset layout (`AffWild2Layout`).
        cache: the `FeatureCache` the features go to.
        run_dir: the stage-1 run folder (`mae/` and `finetune/` phases inside).
        resume: continue interrupted training phases.
        progress: progress bars (default: the config's `runtime.progress`).
        strategy: the run's processes (None: this process's own, `harness.distributed.current_strategy`).
    """
    progress = cfg.runtime.progress if progress is None else progress
    set_threads(cfg.runtime.threads)
    tuned = [e.name for e in finetune_entries(cfg, layout)]
    h_ft = feature_hash(cfg, tuned)
    h_mae = feature_hash(cfg, [e.name for e in layout.train], unfinetuned=True)
    entries = [e for e in _all_entries(layout) if frame_count(e, cache) is not None]
    need_mae = cfg.stage1.extract_unfinetuned

    def cached(name: str, h: str) -> bool:
        return all(cache.has(e.name, name, h) for e in entries)

    ft_weights = RunDir(run_dir).sub("finetune").best_weights
    if cached("visual", h_ft) and (not need_mae or cached("visual_mae", h_mae)):
        return Stage1Result(h_ft, ft_weights if ft_weights.is_file() else None, [e.name for e in entries], True,
                            tuned)
    strategy = current_strategy(strategy)
    run = RunDir(run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    if strategy.on_main:
        run.lock()
    timings: dict[str, float] = {}
    try:
        t = time.perf_counter()
        state = initial_encoder_state(cfg, layout, run, resume, progress, strategy)
        timings["encoder_s"] = time.perf_counter() - t
        device = strategy.device
        t = time.perf_counter()
        weights, _result, best = finetune_encoder(cfg, layout, state, run, resume, progress, strategy)
        timings["finetune_s"] = time.perf_counter() - t
        t = time.perf_counter()
        videos: list[str] = []
        if strategy.on_main:
            vit = _vit(cfg)
            vit.load_state_dict(load_weights(weights))
            encoders = {"visual": (vit.to(device), h_ft)}
            if need_mae:
                encoders["visual_mae"] = (encoder_from_state(cfg, state).to(device), h_mae)
            videos = extract_features(cfg, layout, cache, encoders, progress)
        strategy.barrier()
        timings["extract_s"] = time.perf_counter() - t
        if not videos:
            videos = [e.name for e in entries if cache.has(e.name, "visual", h_ft)]
        if strategy.on_main:
            run.write_json("summary.json", {"feature_hash": h_ft, "feature_hash_mae": h_mae, "finetune": best,
                                            "finetune_videos": tuned, "videos": len(videos),
                                            "timings": timings, "platform": platform_fingerprint()})  # fmt: skip
        return Stage1Result(h_ft, weights, videos, False, tuned, best, timings)
    finally:
        if strategy.on_main:
            run.unlock()
