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

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.config import Config, config_hash
from harness.data.datasets import CacheLike, load_labels
from harness.data.fold_data import FoldData, read_fold_data
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

    pred = stage2_forward(model, batch, modality_dropout)  # (B, T, 2)
    mask = batch["label_mask"]
    if int(mask.sum()) < 2:
        # No annotated frames in this batch: a zero loss that keeps the graph (every process must step).
        return pred.sum() * 0.0
    return ccc_loss(pred, batch["labels"].float(), mask)


def stage2_forward(model: Any, batch: Mapping[str, torch.Tensor], modality_dropout: float = 0.0) -> torch.Tensor:
    """The model's (B, T, 2) float32 prediction for a training batch, one stream dropped from a share of the windows
    while the model trains (`models.augment.modality_dropout`).

    Args:
        model: the engine (or module): `(visual, audio, pad_mask) -> (B, T, 2)`.
        batch: a `WindowDataset` batch on the device.
        modality_dropout: share of the windows that lose one stream.
    """
    visual, audio = batch["visual"], batch["audio"]
    if modality_dropout > 0 and model.training:
        visual, audio = augment.modality_dropout(visual, audio, modality_dropout)
    return model(visual, audio, batch["pad_mask"]).float()  # (B, T, 2)


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


def make_evaluator(data: FoldData, batch: int) -> Callable[[Forward], dict[str, float]]:
    """The per-epoch validation: predict each validation video whole, score all frames together.

    Args:
        data: the fold's data (its validation labels and streams).
        batch: windows per forward.
    """

    def evaluate(forward: Forward) -> dict[str, float]:
        preds = {}
        for v in sorted(data.val_labels):
            visual, audio = data.streams(v)
            preds[v] = predict_arrays(forward, visual, audio, data.length, data.stride, batch)
        return score_record(preds, data.val_labels)

    return evaluate


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
        self.data: FoldData | None = None

    def key(self) -> RunKey:
        return RunKey(extra=self.inputs.fold.identity())

    def fit(self) -> FitResult:
        from models.registry import build_model

        cfg, fold, run, strategy = self.inputs.cfg, self.inputs.fold, self.inputs.run, self.inputs.strategy
        dropout = stream_dropout(cfg)
        # Refined targets are for training only: validation (best epoch) and test are scored on the files' labels.
        data = self.data = read_fold_data(cfg, self.inputs.layout, self.inputs.cache, fold, run.norm_stats_file,
                                          strategy)  # fmt: skip
        torch.manual_seed(cfg.seed)  # the same initial weights in every process and every run of this config
        model = build_model(cfg.temporal_config())
        result = fit(
            model, data.windows, partial(stage2_loss, modality_dropout=dropout), cfg.stage2, cfg.deepspeed, run,
            seed=cfg.seed, evaluate=make_evaluator(data, cfg.runtime.eval_batch), resume=self.inputs.resume,
            num_workers=cfg.runtime.num_workers, progress=self.inputs.progress,
            label=f"{cfg.model.name} fold {fold.index}", strategy=strategy, engine=cfg.runtime.engine,
        )  # fmt: skip
        self.facts = {"windows": len(data.windows), "refined_labels": data.refined, **_backend_of(model)}
        return result

    def finish(self, result: FitResult) -> dict[str, Any]:
        s = self.inputs
        assert self.data is not None, "the skeleton finishes a stage it has fitted"
        timing = {"init_s": round(result.init_s, 3), "step_s": round(result.step_s, 5),
                  "steps_per_epoch": result.steps_per_epoch, "windows": self.facts["windows"],
                  "optimizer": result.extra.get("optimizer"), "refined_labels": self.facts["refined_labels"],
                  **{k: v for k, v in self.facts.items() if k not in ("windows", "refined_labels")}}  # fmt: skip
        return _finish(s.cfg, s.layout, s.cache, s.fold, s.run, self.data, result.best_epoch,
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


def _finish(cfg: Config, layout: AffWild2Layout, cache: CacheLike, fold: Fold, run: RunDir, data: FoldData,
            best_epoch: int, extra: Mapping[str, Any], timing: Mapping[str, Any],
            encoder: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Predict with the best weights, score, write predictions and the final record (rank 0); the record keeps
    the encoder path so that `harness predict` finds the encoder (`harness.stages.predict.find_encoder_weights`)."""
    from submissions.formats import write_submission

    val_preds = predict_videos(run.path, cache, sorted(data.val_labels))
    save_predictions(run.validation_predictions, val_preds)
    val = score_record(val_preds, data.val_labels)
    test_score = None
    notes = []
    if data.missing_test:
        notes.append(f"{data.missing_test} test video(s) have no cached features and were not predicted")
    if data.test:
        test_preds = predict_videos(run.path, cache, data.test)
        save_predictions(run.test_predictions, test_preds)
        entries = [layout.entry(v) for v in data.test]
        if all(e.annotation is not None for e in entries):
            labels = {e.name: load_labels(e.annotation, test_preds[e.name].shape[0]) for e in entries}
            test_score = score_record(test_preds, labels)
        if not data.missing_test and getattr(layout, "sample_file", None) is not None:
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
