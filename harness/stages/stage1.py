"""Stage 1: the visual encoder (paper III.B) and its per-frame CLS features.

1. Encoder weights: the official MAE checkpoint when `encoder.checkpoint` is set (the paper's path), otherwise an
   MAE pre-trained here on the training videos' face crops (`stage1.mae`; no MAE weights are reachable offline).
2. Optionally (`stage1.extract_unfinetuned`, Table III's "MAE w/o FT"), CLS features of that encoder without
   fine-tuning, cached as `visual_mae`; that encoder goes to the stage-1 folder's `encoder.safetensors`, so that
   `harness predict` can encode new videos for a run that reads them.
3. Hierarchical fine-tuning on labelled frames of the TRAINING videos only: patch embedding and the first
   `frozen_blocks` blocks frozen, the rest and a tanh V/A head trained with the CCC loss; frames labelled -5 are
   skipped; augmentation: random resized crop, horizontal flip, rotation, normalisation (mean 0.389, std 0.198).
   The best epoch by CCC on validation frames is kept. `stage1.finetune.epochs: 0` skips steps 3 and 4: stage 1
   then caches only `visual_mae`, which stage 2 reads (`features.visual`, checked when the config loads).
4. CLS features of every frame of every video (train, validation, test) with the fine-tuned encoder, cached as
   `visual` (N, D) float32 with `visual_mask` (N,) bool (the `visual_mae` features of step 2 come from the same
   decoding pass). A frame without a face crop gets a zero row and
   mask False (stage 2 replaces it by the training mean, see `harness.data.datasets`).

Every step is skipped when its outputs exist with the same settings hash (the cache's config hash for features,
run folders' final records for training), so an interrupted stage 1 continues where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from core.errors import HarnessError
from harness.config import FINETUNED_VISUAL, UNFINETUNED_VISUAL, Config
from harness.data.datasets import (
    FrameDataset,
    frame_transform,
    labelled_frames,
)
from harness.data.features import encode_videos, feature_hash, frame_count
from harness.data.splits import stage1_reserved
from harness.folders.run import SUMMARY_FILE, RunDir
from harness.runtime.distributed import Strategy, current_strategy
from harness.runtime.fingerprint import platform_fingerprint
from harness.runtime.sharding import Shard, shard_items
from harness.stages.skeleton import Phase, RunKey, run_stage
from harness.train.loop import FitResult, Forward, fit
from harness.train.precision import set_threads
from harness.train.weights import load_weights, save_weights
from preprocessing.affwild2 import AffWild2Layout
from preprocessing.cache import FeatureCache


class Stage1Error(HarnessError):
    """Stage 1 cannot run (no training frames, a missing checkpoint)."""


@dataclass
class Stage1Result:
    """What stage 1 produced.

    Args:
        feature_hash: the cache config hash of the visual features stage 2 reads (`features.visual`: the
            fine-tuned `visual`, or `visual_mae` where stage 1 does not fine-tune).
        encoder_weights: the ViT that made those features (the fine-tuned one, or the encoder before fine-tuning
            in the stage-1 folder's `encoder.safetensors`); None when skipped and not on disk.
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


def finetune_entries(cfg: Config, layout: AffWild2Layout) -> list[Any]:
    """The training videos fine-tuning learns from: those `stage1.reserve` keeps from stage 2, or all of them."""
    keep = set(stage1_reserved(layout, cfg))
    return [e for e in layout.train if e.name in keep] if keep else list(layout.train)


def _all_entries(layout: AffWild2Layout) -> list[Any]:
    return [*layout.train, *layout.validation, *layout.test]


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
    cfg: Config, layout: AffWild2Layout, run: RunDir, resume: bool, progress: bool, strategy: Strategy | None = None
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
    mae_run = run.mae
    h = feature_hash(cfg, train_videos=[e.name for e in layout.train], unfinetuned=True)
    strategy = current_strategy(strategy)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.mae_config())
    if not run_stage(MAEPhase(cfg, layout, mae_run, h, model, resume, progress, strategy)):
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


def finetune_encoder(cfg: Config, layout: AffWild2Layout, state: Mapping[str, torch.Tensor], run: RunDir, resume: bool,
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
    h = feature_hash(cfg, train_videos=[e.name for e in finetune_entries(cfg, layout)])
    phase = FinetunePhase(cfg, layout, run.finetune, h, state, resume, progress, current_strategy(strategy))
    return run_stage(phase)


class MAEPhase(Phase[bool]):
    """MAE pre-training in the stage skeleton, inside the stage-1 folder (`mae/`); its result: whether it was
    reused (True) or trained now (False).

    Args:
        cfg: the config.
        layout: the dataset layout (training videos' crops).
        run: the MAE run folder.
        h: the run's identity (the un-fine-tuned features' hash).
        model: the MAE to train.
        resume: continue an interrupted pre-training.
        progress: progress bars.
        strategy: the run's processes.
    """

    locks = False  # the stage-1 folder is locked by `run_stage1`

    def __init__(self, cfg: Config, layout: AffWild2Layout, run: RunDir, h: str, model: nn.Module, resume: bool,
                 progress: bool, strategy: Strategy) -> None:  # fmt: skip
        super().__init__(run, cfg, resume, strategy)
        self.layout, self.h, self.model, self.progress = layout, h, model, progress
        self.data: FrameDataset | None = None

    def key(self) -> RunKey:
        return RunKey(run_hash=self.h)

    def prepare(self) -> None:
        cfg = self.cfg
        items = labelled_frames(self.layout.train, cfg.stage1.mae.frames_per_video)
        if not items:
            raise Stage1Error(f"{self.layout.root}: no training frame has both a face crop and a label")
        self.data = FrameDataset(items, frame_transform(cfg.stage1.augment, cfg.encoder.vit.img_size, train=True))

    def fit(self) -> FitResult:
        cfg = self.cfg
        assert self.data is not None  # prepare() made it
        return fit(self.model, self.data, _mae_loss, cfg.stage1.mae.loop, cfg.deepspeed, self.run, seed=cfg.seed,
                   resume=self.resume, num_workers=cfg.runtime.num_workers, progress=self.progress, label="MAE",
                   strategy=self.strategy, engine=cfg.runtime.engine)  # fmt: skip

    def finish(self, result: FitResult) -> dict[str, Any]:
        assert self.data is not None
        return self.run.write_final({"config_hash": self.h, "frames": len(self.data), "best_epoch": result.best_epoch,
                                     "init_s": result.init_s, "step_s": result.step_s})  # fmt: skip

    def summarise(self, record: Mapping[str, Any], skipped: bool) -> bool:
        return skipped


FinetuneOutcome = tuple[Path, FitResult | None, dict[str, float]]
"""The fine-tuned weights file, the fit (None when reused) and the best validation metrics."""


class FinetunePhase(Phase[FinetuneOutcome]):
    """Hierarchical fine-tuning in the stage skeleton, inside the stage-1 folder (`finetune/`).

    Args:
        cfg: the config.
        layout: the dataset layout.
        run: the fine-tuning run folder.
        h: the run's identity (the fine-tuned features' hash).
        state: encoder weights to start from.
        resume: continue an interrupted fine-tuning.
        progress: progress bars.
        strategy: the run's processes.
    """

    locks = False  # the stage-1 folder is locked by `run_stage1`

    def __init__(self, cfg: Config, layout: AffWild2Layout, run: RunDir, h: str, state: Mapping[str, torch.Tensor],
                 resume: bool, progress: bool, strategy: Strategy) -> None:  # fmt: skip
        super().__init__(run, cfg, resume, strategy)
        self.layout, self.h, self.state, self.progress = layout, h, state, progress
        self.data: FrameDataset | None = None
        self.val_frames = 0
        self.evaluate: Any = None
        self.result: FitResult | None = None

    def key(self) -> RunKey:
        return RunKey(run_hash=self.h)

    def prepare(self) -> None:
        cfg, layout = self.cfg, self.layout
        items = labelled_frames(finetune_entries(cfg, layout), cfg.stage1.frames_per_video)
        if not items:
            raise Stage1Error(f"{layout.root}: no training frame has both a face crop and a label")
        size = cfg.encoder.vit.img_size
        self.data = FrameDataset(items, frame_transform(cfg.stage1.augment, size, train=True))
        val_items = labelled_frames(layout.validation, cfg.stage1.val_frames_per_video)
        self.val_frames = len(val_items)
        if len(val_items) >= 2:
            val = FrameDataset(val_items, frame_transform(cfg.stage1.augment, size, train=False))
            self.evaluate = _frame_evaluator(val, cfg.runtime.eval_batch)

    def fit(self) -> FitResult:
        cfg = self.cfg
        assert self.data is not None  # prepare() made it
        model = encoder_from_state(cfg, self.state)
        self.result = fit(model, self.data, _frame_loss, cfg.stage1.finetune, cfg.deepspeed, self.run, seed=cfg.seed,
                          evaluate=self.evaluate, resume=self.resume, num_workers=cfg.runtime.num_workers,
                          progress=self.progress, label="fine-tune", strategy=self.strategy,
                          engine=cfg.runtime.engine)  # fmt: skip
        return self.result

    def finish(self, result: FitResult) -> dict[str, Any]:
        assert self.data is not None
        return self.run.write_final({"config_hash": self.h, "frames": len(self.data), "val_frames": self.val_frames,
                                     "best_epoch": result.best_epoch, "val": result.best, "init_s": result.init_s,
                                     "step_s": result.step_s})  # fmt: skip

    def summarise(self, record: Mapping[str, Any], skipped: bool) -> FinetuneOutcome:
        if skipped or self.result is None:
            return self.run.best_weights, None, dict(record.get("val", {}))
        return self.run.best_weights, self.result, self.result.best


def run_stage1(cfg: Config, layout: AffWild2Layout, cache: FeatureCache, run_dir: str | Path, *, resume: bool = False,
               progress: bool | None = None, strategy: Strategy | None = None) -> Stage1Result:  # fmt: skip
    """Stage 1 end to end: encoder weights, optional un-fine-tuned features, fine-tuning, features.

    Args:
        cfg: the config.
        layout: the dataset layout (`AffWild2Layout`).
        cache: the `FeatureCache` the features go to.
        run_dir: the stage-1 run folder (`mae/` and `finetune/` phases inside).
        resume: continue interrupted training phases.
        progress: progress bars (default: the config's `runtime.progress`).
        strategy: the run's processes (None: this process's own, `harness.runtime.distributed.current_strategy`).
    """
    progress = cfg.runtime.progress if progress is None else progress
    set_threads(cfg.runtime.threads)
    tune = cfg.stage1.finetune.epochs > 0  # 0: no fine-tuning, the encoder's own features only (`visual_mae`)
    tuned = [e.name for e in finetune_entries(cfg, layout)] if tune else []
    h_ft = feature_hash(cfg, train_videos=tuned)
    h_mae = feature_hash(cfg, train_videos=[e.name for e in layout.train], unfinetuned=True)
    entries = [e for e in _all_entries(layout) if frame_count(e, cache) is not None]
    # name -> hash of every feature this stage writes; the first is the one its result names.
    wanted = {FINETUNED_VISUAL: h_ft} if tune else {}
    if not tune or cfg.stage1.extract_unfinetuned:
        wanted[UNFINETUNED_VISUAL] = h_mae
    run = RunDir(run_dir)

    # The encoder recorded for stage 2 (and `harness predict`) is the one that made the features it reads.
    reads = cfg.features.visual if cfg.features.visual in wanted else next(iter(wanted))
    if all(cache.has(e.name, name, h) for name, h in wanted.items() for e in entries):
        weights = run.encoder_that_made(reads == FINETUNED_VISUAL)
        return Stage1Result(wanted[reads], weights if weights.is_file() else None, [e.name for e in entries], True,
                            tuned)  # fmt: skip
    strategy = current_strategy(strategy)
    run.path.mkdir(parents=True, exist_ok=True)
    if strategy.on_main:
        run.lock()
    timings: dict[str, float] = {}
    try:
        t = time.perf_counter()
        state = initial_encoder_state(cfg, layout, run, resume, progress, strategy)
        timings["encoder_s"] = time.perf_counter() - t
        device = strategy.device
        encoders: dict[str, tuple[nn.Module, str]] = {}
        best: dict[str, float] = {}
        if tune:
            t = time.perf_counter()
            weights, _result, best = finetune_encoder(cfg, layout, state, run, resume, progress, strategy)
            timings["finetune_s"] = time.perf_counter() - t
            vit = _vit(cfg)
            vit.load_state_dict(load_weights(weights))
            encoders[FINETUNED_VISUAL] = (vit.to(device), h_ft)
        t = time.perf_counter()
        if UNFINETUNED_VISUAL in wanted:
            vit_mae = encoder_from_state(cfg, state)
            if strategy.on_main:
                save_weights(run.encoder_weights, vit_mae.state_dict())
            encoders[UNFINETUNED_VISUAL] = (vit_mae.to(device), h_mae)
        # Every process encodes its share of the videos (balanced by frames) on its own device.
        shard = Shard(strategy.rank, strategy.world_size)
        mine = shard_items(entries, [frame_count(e, cache) or 0 for e in entries], shard)
        encode_videos(cfg, mine, cache, encoders, progress and strategy.on_main)
        cache.close()  # this process's video locks: the others may read (and later runs write) them now
        strategy.barrier()
        timings["extract_s"] = time.perf_counter() - t
        videos = [e.name for e in entries if cache.has(e.name, reads, wanted[reads])]
        if strategy.on_main:
            run.write_json(SUMMARY_FILE, {"feature_hash": h_ft if tune else None, "feature_hash_mae": h_mae,
                                          "finetune": best, "finetune_videos": tuned, "videos": len(videos),
                                          "timings": timings, "platform": platform_fingerprint()})  # fmt: skip
        return Stage1Result(wanted[reads], run.encoder_that_made(reads == FINETUNED_VISUAL), videos, False, tuned,
                            best, timings)
    finally:
        if strategy.on_main:
            run.unlock()
