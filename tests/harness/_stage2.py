"""The stage-2 settings of the harness tests: a model small enough to train in seconds on the synthetic corpus
(`tests.harness._corpus`, whose cached visual features are 16-d)."""

from __future__ import annotations

TEST_SETTINGS = [
    "encoder.embed_dim=16", "encoder.num_heads=2",  # the synthetic corpus caches 16-d visual features
    "features.audio=[mfcc, egemaps]", "windows.length=32", "windows.stride=24",
    "model.tcn_channels=16", "model.dim_feedforward=32", "model.head_hidden=16",
    "stage2.epochs=3", "stage2.micro_batch=4", "runtime.progress=false",
    # The demo's stage 1 and trainer, which these tests were written for: the quick config reads the encoder's
    # features before fine-tuning (`visual_mae`), reserves nothing and trains with plain torch.
    "features.visual=visual", "stage1.finetune.epochs=2", "stage1.reserve=0.35", "runtime.engine=deepspeed",
]  # fmt: skip


def settings(*more: str) -> list[str]:
    """The test settings, then `more` config overrides (a later one wins)."""
    return [*TEST_SETTINGS, *more]
