"""Stage 2: the temporal audio-visual model on cached features (paper III.D, IV.C).

Per fold: feature normalisation statistics from the fold's training videos, windows of `windows.length` frames
with stride `windows.stride` (short videos padded and masked), CCC loss on valence and arousal over the annotated
frames of each batch, warm-up + cosine restarts, DeepSpeed ZeRO. After every epoch the validation videos are
predicted whole (overlap-averaged windows) and scored with one CCC over all their frames, as the challenge does;
the best epoch by P_VA is kept. At the end the best weights predict the validation videos and, for fold 0, the
test list (written as the ABAW submission file when the organisers' sample file is present).

A run folder with a final record of the same config hash and fold is not trained again (`skipped=True`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.config import Config, config_hash
from harness.data.datasets import (
    VISUAL_MASK,
    CacheLike,
    NormStats,
    WindowDataset,
    compute_norm_stats,
    load_labels,
    load_video_streams,
    video_frames,
)
from harness.data.refine import class_va_means, refine_labels, refined_frames
from harness.data.splits import Fold, fold_split, stage1_reserved
from harness.folders.run import ENCODER_KEY, RunDir
from harness.runtime.distributed import Strategy, current_strategy
from harness.stages.predict import predict_arrays, predict_videos, save_predictions
from harness.stages.skeleton import RunKey, StageInputs, StageResult, TrainedStage, run_stage
from harness.train.loop import FitResult, Forward, fit
from harness.train.precision import set_threads
from models import augment
from models.configs import TemporalConfig
from preprocessing.affwild2 import AffWild2Layout
from submissions.scoring import score_predictions as score_predictions_va


def stage2_loss(model: Any, batch: Mapping[str, torch.Tensor], modality_dropout: float = 0.0) -> torch.Tensor:
    """1 - mean(CCC_V, CCC_A) over the batch's annotated, unpadded frames.

    Args:
        model: the engine (or module): `(visual, audio, pad_mask) -> (B, T, 2)`.
        batch: a `WindowDataset` batch on the device.
        modality_dropout: share of the windows that lose one stream while the model trains
            (`models.augment.modality_dropout`, from torch's global random state, which the run seeds).
    """
    from models.losses import ccc_loss

    visual, audio = batch["visual"], batch["audio"]
    if modality_dropout > 0 and model.training:
        visual, audio = augment.modality_dropout(visual, audio, modality_dropout)
    pred = model(visual, audio, batch["pad_mask"]).float()  # (B, T, 2)
    mask = batch["label_mask"]
    if int(mask.sum()) < 2:
        # No annotated frames in this batch: a zero loss that keeps the graph (every process must step).
        return pred.sum() * 0.0
    return ccc_loss(pred, batch["labels"].float(), mask)


def score_record(preds: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The scores a run's final record keeps (a dict of `ccc_v`, `ccc_a`, `p_va`, `frames`): one CCC over all frames of
    all videos (frames labelled -5 dropped), as the challenge scores a partition; the full `ScoreReport` is
    `submissions.scoring.score_predictions`'s.

    Args:
        preds: video -> (N, 2).
        labels: video -> (N, 2), same videos and lengths.
    """
    # The challenge scorer itself (it also names a missing video or a length mismatch), as a metrics record.
    s = score_predictions_va(dict(preds), dict(labels), "stage-2 predictions").total
    return {"ccc_v": s.ccc_v, "ccc_a": s.ccc_a, "p_va": s.p_va, "frames": float(s.frames)}


def make_evaluator(cache: CacheLike, cfg: Config, stats: NormStats, labels: Mapping[str, np.ndarray]):
    """The per-epoch validation: predict each video whole, score all frames together.

    Args:
        cache: the feature cache.
        cfg: the run config.
        stats: training normalisation statistics.
        labels: validation video -> (N, 2) labels.
    """

    def evaluate(forward: Forward) -> dict[str, float]:
        preds = {}
        for v in sorted(labels):
            visual, audio = load_video_streams(cache, v, cfg.features, stats)
            preds[v] = predict_arrays(forward, visual, audio, cfg.windows.length, cfg.windows.stride,
                                      cfg.runtime.eval_batch)  # fmt: skip
        return score_record(preds, labels)

    return evaluate


def _labels_for(layout: AffWild2Layout, cache: CacheLike, names: Sequence[str], feature: str) -> dict[str, np.ndarray]:
    out = {}
    for name in names:
        entry = layout.entry(name)
        out[name] = load_labels(entry.annotation, video_frames(cache, name, feature))
    return out


def training_labels(cfg: Config, layout: AffWild2Layout,
                    labels: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:  # fmt: skip
    """The training targets of a fold: the files' labels, refined where `data.refine_labels` is on.

    Only the fold's training videos are read (their expression files and their labels give the class means), so
    nothing of a validation or test video reaches the targets.

    Args:
        cfg: the config.
        layout: the dataset layout (`AffWild2Layout.expressions` reads each video's expression file).
        labels: training video -> (N, 2) labels as read from the files.

    Returns:
        (video -> (N, 2) targets, label values refinement filled in).
    """
    if not cfg.data.refine_labels:
        return dict(labels), 0
    classes = {v: layout.expressions(layout.entry(v), lab.shape[0]) for v, lab in labels.items()}
    means = class_va_means((labels[v], classes[v]) for v in sorted(labels))
    out, filled = {}, 0
    for v in sorted(labels):
        out[v] = refine_labels(labels[v], classes[v], means, cfg.data.refine_tau)
        filled += refined_frames(labels[v], out[v])
    return out, filled


def _has_features(cache: CacheLike, video: str, cfg: Config) -> bool:
    names = [cfg.features.visual, VISUAL_MASK, *cfg.features.audio]
    have = cache.manifest(video).get("features", {})
    return all(n in have for n in names)


def train_stage2(
    cfg: Config,
    layout: AffWild2Layout,
    cache: CacheLike,
    fold: int | Fold,
    run_dir: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool | None = None,
    encoder_weights: str | Path | None = None,
    strategy: Strategy | None = None,
) -> StageResult:
    """Train, select, predict and score the temporal model of `cfg` on one fold (`Stage2` in the stage skeleton).

    Args:
        cfg: the run config (its `model.name` and `features` pick the Table IV/III variant).
        layout: the dataset layout (`AffWild2Layout`): splits and annotation files.
        cache: the feature cache with visual, visual_mask and the audio features of every video used.
        fold: fold index (0 = official split) or a `Fold`.
        run_dir: the run folder.
        resume: continue an interrupted run from its last checkpoint.
        force: train even when the folder holds a finished run of this config.
        progress: rich progress bars (default: the config's `runtime.progress`).
        encoder_weights: the stage-1 ViT that made the visual features, recorded so that `harness predict` can
            run a raw video through the same encoder.
        strategy: the run's processes (None: this process's own, `harness.runtime.distributed.current_strategy`).
    """
    strategy = current_strategy(strategy)
    set_threads(cfg.runtime.threads)
    if isinstance(fold, int):
        fold = fold_split(layout, fold, cfg.experiment.k, cfg.experiment.fold_seed, stage1_reserved(layout, cfg))
    show = cfg.runtime.progress if progress is None else progress
    inputs = StageInputs(cfg, layout, cache, fold, RunDir(run_dir), resume, show, strategy)
    encoder = Path(encoder_weights).resolve() if encoder_weights else None
    return run_stage(Stage2(inputs, encoder), force=force)


class Stage2(TrainedStage):
    """Stage 2 in the stage skeleton: the fold's windows, the temporal model, its final record.

    Args:
        inputs: what every stage is given.
        encoder: the stage-1 ViT behind the visual features (recorded), or None.
    """

    def __init__(self, inputs: StageInputs, encoder: Path | None) -> None:
        super().__init__(inputs)
        self.encoder = encoder
        self.facts: dict[str, Any] = {}
        self.val_labels: dict[str, np.ndarray] = {}

    def key(self) -> RunKey:
        return RunKey(extra=self.inputs.fold.identity())

    def fit(self) -> FitResult:
        from models.registry import build_model

        cfg, layout, cache, fold, run, strategy = (self.inputs.cfg, self.inputs.layout, self.inputs.cache,
                                                   self.inputs.fold, self.inputs.run, self.inputs.strategy)  # fmt: skip
        feature = cfg.features.visual
        # Refined targets are for training only: validation (best epoch) and test are scored on the files' labels.
        train_labels, refined = training_labels(cfg, layout, _labels_for(layout, cache, fold.train, feature))
        self.val_labels = _labels_for(layout, cache, fold.val, feature)
        stats_file = run.norm_stats_file
        if strategy.on_main:
            stats = compute_norm_stats(cache, list(fold.train), cfg.features)
            stats.save(stats_file)
        strategy.barrier()
        stats = NormStats.load(stats_file)

        train_set = WindowDataset(cache, train_labels, cfg.features, stats, cfg.windows.length, cfg.windows.stride)
        torch.manual_seed(cfg.seed)  # the same initial weights in every process and every run of this config
        model = build_model(cfg.temporal_config())
        loss_fn = partial(stage2_loss, modality_dropout=stream_dropout(cfg))
        result = fit(
            model, train_set, loss_fn, cfg.stage2, cfg.deepspeed, run,
            seed=cfg.seed, evaluate=make_evaluator(cache, cfg, stats, self.val_labels), resume=self.inputs.resume,
            num_workers=cfg.runtime.num_workers, progress=self.inputs.progress,
            label=f"{cfg.model.name} fold {fold.index}", strategy=strategy, engine=cfg.runtime.engine,
        )  # fmt: skip
        self.facts = {"windows": len(train_set), "refined_labels": refined, **_backend_of(model)}
        return result

    def finish(self, result: FitResult) -> dict[str, Any]:
        s = self.inputs
        timing = {"init_s": round(result.init_s, 3), "step_s": round(result.step_s, 5),
                  "steps_per_epoch": result.steps_per_epoch, "windows": self.facts["windows"],
                  "optimizer": result.extra.get("optimizer"), "refined_labels": self.facts["refined_labels"],
                  **{k: v for k, v in self.facts.items() if k not in ("windows", "refined_labels")}}  # fmt: skip
        return _finish(s.cfg, s.layout, s.cache, s.fold, s.run, self.val_labels, result.best_epoch,
                       self.key().extra or {}, timing, self.encoder)  # fmt: skip


def stream_dropout(cfg: Config, model_name: str | None = None) -> float:
    """`data.modality_dropout` for a model that fuses both streams; 0 for a one-stream row (it would silence its
    only input).

    Args:
        cfg: the run's config.
        model_name: the stage-2 model (None: `model.name`).
    """
    tc = cfg.temporal_config(model_name)
    both = not isinstance(tc, TemporalConfig) or (tc.uses_visual and tc.uses_audio)  # every rival fuses both
    return cfg.data.modality_dropout if both else 0.0


def _backend_of(model: Any) -> dict[str, str]:
    """The state-space library a model runs on (`mamba_va`: mambapy or mamba_ssm, chosen where it was built), for
    the run's final record; {} for every model without one, so their records are unchanged."""
    backend = getattr(model, "ssm_backend", None)
    return {"ssm_backend": backend} if backend else {}


def _finish(cfg: Config, layout: AffWild2Layout, cache: CacheLike, fold: Fold, run: RunDir,
            val_labels: Mapping[str, np.ndarray],
            best_epoch: int, extra: Mapping[str, Any], timing: Mapping[str, Any],
            encoder: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Predict with the best weights, score, write predictions and the final record (rank 0); the record keeps
    the encoder path so that `harness predict` finds the encoder (`harness.stages.predict.find_encoder_weights`)."""
    from submissions.formats import write_submission

    val_preds = predict_videos(run.path, cache, sorted(val_labels))
    save_predictions(run.validation_predictions, val_preds)
    val = score_record(val_preds, val_labels)
    test_score = None
    notes = []
    test = [v for v in fold.test if _has_features(cache, v, cfg)]
    if len(test) < len(fold.test):
        notes.append(f"{len(fold.test) - len(test)} test video(s) have no cached features and were not predicted")
    if test:
        test_preds = predict_videos(run.path, cache, test)
        save_predictions(run.test_predictions, test_preds)
        entries = [layout.entry(v) for v in test]
        if all(e.annotation is not None for e in entries):
            labels = {e.name: load_labels(e.annotation, test_preds[e.name].shape[0]) for e in entries}
            test_score = score_record(test_preds, labels)
        if len(test) == len(fold.test) and getattr(layout, "sample_file", None) is not None:
            log: list[str] = []
            write_submission(run.submission_file, test_preds, layout.sample_file, pad=True, log=log)
            notes.extend(log)
    record = {
        "config_hash": config_hash(cfg, extra),
        "fold": fold.index,
        "model": cfg.model.name,
        "features": {"visual": cfg.features.visual, "audio": list(cfg.features.audio)},
        "best_epoch": best_epoch,
        "val": val,
        "test": test_score,
        "notes": notes,
        **timing,
        ENCODER_KEY: str(encoder) if encoder else None,
    }
    return run.write_final(record)
