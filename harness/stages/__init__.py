"""The stages of the pipeline: preprocess, stage 1 (MAE, fine-tuning, features), stage 2, the challenge baseline and
predict.

Public names are re-exported lazily (PEP 562): `from harness.stages import X` imports only X's module.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "AUDIO_FEATURES": "harness.stages.preprocess_jobs",
    "BASELINE_VERSION": "harness.stages.baseline",
    "Baseline": "harness.stages.baseline",
    "BaselineError": "harness.stages.baseline",
    "CRASH_TEST_ENV": "harness.stages.preprocess_video",
    "FinetuneOutcome": "harness.stages.stage1",
    "FinetunePhase": "harness.stages.stage1",
    "Forward": "harness.stages.predict",
    "IMAGENET_MEAN": "harness.stages.baseline",
    "IMAGENET_STD": "harness.stages.baseline",
    "LONGER_AUDIO_S": "harness.stages.preprocess_video",
    "MAEPhase": "harness.stages.stage1",
    "ModuleForward": "harness.stages.predict",
    "Phase": "harness.stages.skeleton",
    "PredictError": "harness.stages.predict",
    "R": "harness.stages.skeleton",
    "RunKey": "harness.stages.skeleton",
    "Stage1Error": "harness.stages.stage1",
    "Stage1Result": "harness.stages.stage1",
    "Stage2": "harness.stages.stage2",
    "StageInputs": "harness.stages.skeleton",
    "StageResult": "harness.stages.skeleton",
    "TrainedStage": "harness.stages.skeleton",
    "VIDEO_SUFFIXES": "harness.stages.preprocess_jobs",
    "VideoJob": "harness.stages.preprocess_jobs",
    "VideoResult": "harness.stages.preprocess_jobs",
    "average_windows": "harness.stages.predict",
    "baseline_hash": "harness.stages.baseline",
    "build_baseline": "harness.stages.baseline",
    "crop_transform": "harness.stages.baseline",
    "discover_jobs": "harness.stages.preprocess_jobs",
    "encoder_from_state": "harness.stages.stage1",
    "find_encoder_weights": "harness.stages.predict",
    "finetune_encoder": "harness.stages.stage1",
    "finetune_entries": "harness.stages.stage1",
    "forward_paths": "harness.stages.baseline",
    "frame_loss": "harness.stages.baseline",
    "initial_encoder_state": "harness.stages.stage1",
    "is_shard_summary": "harness.stages.preprocess",
    "job_frames": "harness.stages.preprocess_jobs",
    "load_norm_stats": "harness.stages.predict",
    "load_predictions": "harness.stages.predict",
    "load_trained": "harness.stages.predict",
    "make_evaluator": "harness.stages.stage2",
    "merge_shard_summaries": "harness.stages.preprocess",
    "module_forward": "harness.stages.predict",
    "no_face_prediction": "harness.stages.baseline",
    "predict_arrays": "harness.stages.predict",
    "predict_frames": "harness.stages.baseline",
    "predict_streams": "harness.stages.predict",
    "predict_video_file": "harness.stages.predict",
    "preprocess": "harness.stages.preprocess",
    "process_video": "harness.stages.preprocess_video",
    "run_stage": "harness.stages.skeleton",
    "run_stage1": "harness.stages.stage1",
    "safe_name": "harness.stages.preprocess_jobs",
    "save_predictions": "harness.stages.predict",
    "score_record": "harness.stages.stage2",
    "stage2_forward": "harness.stages.stage2",
    "stage2_loss": "harness.stages.stage2",
    "train_baseline": "harness.stages.baseline",
    "train_stage2": "harness.stages.stage2",
    "untrained_baseline": "harness.stages.baseline",
    "write_video_outputs": "harness.stages.predict",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.stages' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
