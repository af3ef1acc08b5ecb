"""Upper bounds of every config value that sizes memory, threads or processes; duplicate YAML keys; unknown keys of
mixed types."""

from __future__ import annotations

import re

import pytest

from harness.config import ConfigError, load_config, load_yaml_text
from harness.config import limits as S

BOUNDED = [
    ("runtime.threads", S.MAX_THREADS), ("runtime.num_workers", S.MAX_WORKERS), ("runtime.eval_batch", S.MAX_BATCH),
    ("windows.length", S.MAX_WINDOW), ("stage2.micro_batch", S.MAX_BATCH), ("stage2.grad_accum", S.MAX_BATCH),
    ("stage2.epochs", S.MAX_EPOCHS), ("stage1.extract_batch", S.MAX_BATCH), ("experiment.k", S.MAX_FOLDS),
    ("stage2.schedule.warmup_steps", S.MAX_STEPS), ("stage2.schedule.t_mult", S.MAX_T_MULT),
    ("preprocess.stride", S.MAX_DETECT_STRIDE), ("preprocess.input_size", S.MAX_INPUT_SIZE),
    ("stage1.frames_per_video", S.MAX_FRAMES_PER_VIDEO), ("model.tcn_channels", S.MAX_MODEL_INT),
    ("model.dim_feedforward", S.MAX_MODEL_INT), ("encoder.depth", S.MAX_MODEL_INT),
]  # fmt: skip


@pytest.mark.parametrize(("key", "bound"), BOUNDED)
def test_one_past_the_bound_is_refused_with_its_key(key, bound):
    with pytest.raises(ConfigError, match=re.escape(f"{key}: {bound + 1}") + " out of range"):
        load_config("quick", [f"{key}={bound + 1}"])


@pytest.mark.parametrize(("key", "value"), [("runtime.threads", 100_000), ("runtime.num_workers", 100_000),
                                            ("model.tcn_channels", 2_000_000_000), ("windows.length", 2**62)])
def test_the_issues_values_are_refused(key, value):
    with pytest.raises(ConfigError, match="out of range"):
        load_config("quick", [f"{key}={value}"])


def test_the_bounds_admit_the_shipped_configs_and_a_value_at_the_bound():
    for name in ("quick", "demo", "paper"):
        load_config(name)
    assert load_config("quick", [f"runtime.threads={S.MAX_THREADS}"]).runtime.threads == S.MAX_THREADS


def test_duplicate_keys_are_refused_with_both_lines():
    with pytest.raises(ConfigError, match=r"^c\.yaml:4: key 'lr' given twice \(lines 2 and 4\)"):
        load_yaml_text("s:\n  lr: 1\n  mom: 2\n  lr: 3\n", "c.yaml")
    assert load_yaml_text("a: &x {p: 1}\nb: {<<: *x, q: 2}\n", "ok.yaml")["b"] == {"p": 1, "q": 2}  # merges are fine


def test_unknown_keys_of_two_types_are_named(tmp_path):
    (tmp_path / "c.yaml").write_text("base: quick\n1: one\nfoo: two\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(tmp_path / "c.yaml")
