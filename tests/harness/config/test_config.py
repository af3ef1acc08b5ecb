"""Configs: the three named files load, errors name the dotted key, derived numbers are computed."""

from __future__ import annotations

import re

import pytest

from harness.config import (
    AUDIO_DIMS,
    CONFIG_DIR,
    FINETUNED_VISUAL,
    UNFINETUNED_VISUAL,
    UNHASHED_SECTIONS,
    Config,
    ConfigError,
    PreprocessConfig,
    add_override_argument,
    config_from_args,
    config_hash,
    load_config,
    parse_override,
    train_batch_size,
)


@pytest.mark.parametrize("name", ["paper", "demo", "quick"])
def test_named_configs_load_and_round_trip(name):
    cfg = load_config(name)
    assert cfg.name == name
    assert Config.from_dict(cfg.to_dict()) == cfg
    # The YAML a run folder keeps reads back to the same config.
    import yaml

    assert Config.from_dict(yaml.safe_load(cfg.to_yaml())) == cfg


def test_paper_config_holds_the_papers_numbers():
    cfg = load_config("paper")
    vit = cfg.vit_config()
    assert (vit.embed_dim, vit.depth, vit.img_size, vit.patch_size) == (1024, 24, 224, 16)
    assert vit.resolved_frozen_blocks == 16
    assert cfg.visual_dim == 1024
    assert cfg.audio_dim == 128 + 39 + 23 == 190
    t = cfg.temporal_config()
    assert (t.fusion, t.tcn_channels, len(t.tcn_dilations), t.temperature) == ("bdca", 128, 4, 0.5)
    assert (t.visual_dim, t.audio_dim) == (1024, 190)
    assert (cfg.windows.length, cfg.windows.stride) == (300, 200)
    s = cfg.stage2.schedule
    assert (s.warmup_start_lr, s.lr) == (3e-5, 5e-3)
    assert cfg.deepspeed.zero_stage == 2 and cfg.deepspeed.precision == "auto"
    assert (cfg.stage1.augment.rotation, cfg.stage1.augment.mean, cfg.stage1.augment.std) == (10.0, 0.389, 0.198)
    assert cfg.experiment.folds == (0, 1, 2, 3, 4, 5) and cfg.experiment.k == 5


def test_open_hyperparameters_are_marked_our_choice():
    text = (CONFIG_DIR / "paper.yaml").read_text()
    for key in ("micro_batch", "epochs", "num_heads", "num_layers", "dropout", "weight_decay", "warmup_steps",
                "restart_epochs", "t_mult", "betas", "min_lr"):  # fmt: skip
        lines = [ln for ln in text.splitlines() if re.match(rf"\s*{key}:", ln)]
        assert lines, key
        for ln in lines:
            if key == "epochs" and "mae" in ln:
                continue
            assert "# our choice" in ln, ln


def test_quick_inherits_demo_and_changes_only_sizes():
    demo, quick = load_config("demo"), load_config("quick")
    assert quick.model == demo.model and quick.encoder == demo.encoder
    assert quick.features.audio == demo.features.audio
    # The quick run reads the encoder's features before fine-tuning and does not fine-tune (quick.yaml measures
    # why); the demo fine-tunes on reserved videos and reads the fine-tuned features.
    assert (quick.features.visual, quick.stage1.finetune.epochs, quick.stage1.reserve) == (UNFINETUNED_VISUAL, 0, 0.0)
    assert demo.features.visual == FINETUNED_VISUAL and demo.stage1.finetune.epochs > 0 and demo.stage1.reserve > 0
    assert quick.windows.length < demo.windows.length  # the quick corpus has shorter clips
    # More epochs than the demo over fewer, shorter videos: the quick demo's models must learn (CI guards them).
    assert quick.stage2.epochs > demo.stage2.epochs
    assert not quick.experiment.table3 and not quick.stage1.extract_unfinetuned
    assert quick.stage2.weight_decay == demo.stage2.weight_decay  # untouched keys come from the base
    assert quick.stage2.schedule.lr == demo.stage2.schedule.lr
    assert quick.experiment.folds == (0,)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["stage1.finetune.epochs=0"], "set features.visual=visual_mae"),
        (["stage1.finetune.epochs=0", "features.visual=visual_mae"], "set stage1.reserve=0"),
        (["stage1.finetune.epochs=0", "features.visual=visual_mae", "stage1.reserve=0.0"], "experiment.table3"),
        (["features.visual=visual_mae", "stage1.extract_unfinetuned=false"], "extract_unfinetuned=true"),
    ],
)
def test_visual_features_must_be_ones_stage1_makes(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("demo", overrides)


def test_visual_features_stage1_makes_load():
    no_ft = ["stage1.finetune.epochs=0", "features.visual=visual_mae", "stage1.reserve=0.0", "experiment.table3=false"]
    assert load_config("demo", no_ft).features.visual == UNFINETUNED_VISUAL
    assert load_config("demo", ["features.visual=visual_mae"]).stage1.extract_unfinetuned  # the demo extracts both
    # Without stage 1 the features come from elsewhere (`harness preprocess --encoder`): any name.
    assert load_config("demo", ["stage1.enabled=false", "features.visual=mine"]).features.visual == "mine"


def test_derived_dims_follow_the_features():
    cfg = load_config("quick", ["features.audio=[mfcc]", "encoder.embed_dim=64", "encoder.num_heads=2"])
    assert cfg.audio_dim == AUDIO_DIMS["mfcc"] == 39
    assert cfg.visual_dim == 64
    assert cfg.temporal_config("concat").audio_dim == 39


def test_train_batch_size_is_micro_times_accum_times_world():
    cfg = load_config("quick", ["stage2.micro_batch=3", "stage2.grad_accum=5"])
    assert train_batch_size(cfg.stage2, 1) == 15
    assert train_batch_size(cfg.stage2, 2) == 30
    with pytest.raises(ConfigError):
        train_batch_size(cfg.stage2, 0)


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ("stage2.epochz=3", "stage2.epochz"),
        ("stage2.epochs=three", "stage2.epochs"),
        ("stage2.epochs=-1", "stage2.epochs"),
        ("stage2.micro_batch=2.5", "stage2.micro_batch"),
        ("stage1.augment.hflip=1.5", "stage1.augment.hflip"),
        ("stage2.betas=[0.9]", "stage2.betas"),
        ("deepspeed.zero_stage=4", "deepspeed.zero_stage"),
        ("deepspeed.precision=fp64", "deepspeed.precision"),
        ("model.visual_dim=12", "model.visual_dim"),
        ("model.tcn_chanels=12", "model.tcn_chanels"),
        ("model.num_heads=x", "model.num_heads"),
        ("encoder.bogus=1", "encoder.bogus"),
        ("windows.stride=100", "windows.stride"),
        ("features.audio=[mfcc, opus]", "features.audio"),
        ("experiment.folds=[0, 9]", "experiment.folds"),
        ("model.name=lstm", "model.name"),
        ("stage1.frames_per_video=0", "stage1.frames_per_video"),
    ],
)
def test_bad_values_name_their_dotted_key(override, where):
    with pytest.raises(ConfigError) as e:
        load_config("quick", [override])
    assert where in str(e.value)


def test_unknown_section_and_missing_key(tmp_path):
    with pytest.raises(ConfigError, match="nosuch"):
        load_config("quick", ["nosuch.key=1"])
    f = tmp_path / "c.yaml"
    f.write_text("base: demo\nstage2:\n  epochs: 2\n  mystery: 1\n")
    with pytest.raises(ConfigError, match=r"stage2\.mystery"):
        load_config(f)
    data = load_config("quick").to_dict()
    del data["windows"]["stride"]
    with pytest.raises(ConfigError, match=r"windows\.stride: missing"):
        Config.from_dict(data)


def test_model_library_checks_surface_with_the_section():
    # 32 channels x 2 modalities = 64 is not divisible by 5 heads: the models package says so, we name the section.
    with pytest.raises(ConfigError, match="model"):
        load_config("quick", ["model.num_heads=5"])


def test_overrides_parse_yaml_values():
    assert parse_override("a.b=3") == ("a.b", 3)
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("a.b=null") == ("a.b", None)
    assert load_config("quick", ["stage2.schedule.lr=1e-3"]).stage2.schedule.lr == 1e-3
    with pytest.raises(ConfigError):
        parse_override("novalue")
    cfg = load_config("quick", {"stage2.epochs": 3, "model.num_layers": 2})
    assert cfg.stage2.epochs == 3 and cfg.temporal_config().num_layers == 2


def test_hash_ignores_runtime_and_experiment_but_not_training():
    base = load_config("quick")
    h = config_hash(base)
    assert config_hash(load_config("quick", ["runtime.progress=false", "experiment.folds=[1]"])) == h
    assert config_hash(load_config("quick", ["stage2.epochs=7"])) != h
    assert config_hash(base, {"fold": 1}) != config_hash(base, {"fold": 2})
    assert base.replace(**{"stage2.epochs": 7}).stage2.epochs == 7


def test_base_loops_and_missing_files_are_errors(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("base: b.yaml\n")
    b.write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_config(a)
    with pytest.raises(ConfigError, match="no config named"):
        load_config("nonesuch")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


# Today's run folders and the recorded quick-demo scores are keyed by these: demo's computed before the config
# package split, quick's when it stopped fine-tuning (the 40-video ci corpus, 30 stage-2 epochs of 8 windows).
RECORDED_HASHES = {
    "quick": "7ef4c3e718faec03401a0362f527455002002bc1215bccb914de55ba3204e3a1",
    "demo": "b1b2be99702ed7d67bb4be20a11327a072c41486d69e81b57bc6dd293d546acf",
}


@pytest.mark.parametrize("name", sorted(RECORDED_HASHES))
def test_hash_of_the_named_configs_is_unchanged(name):
    assert config_hash(load_config(name)) == RECORDED_HASHES[name]


def test_a_field_added_later_leaves_the_hash_at_its_neutral_value():
    """`data.modality_dropout` came after run folders existed: at 0 a config hashes as before it existed."""
    demo = load_config("demo")
    assert demo.data.modality_dropout == 0.0
    assert config_hash(load_config("demo", ["data.modality_dropout=0.0"])) == config_hash(demo)
    assert config_hash(load_config("demo", ["data.modality_dropout=0.4"])) != config_hash(demo)


def test_preprocess_section_defaults_and_stays_out_of_the_hash():
    import harness.stages.preprocess

    assert harness.stages.preprocess.PreprocessConfig is PreprocessConfig  # one definition
    quick = load_config("quick")
    assert quick.preprocess == PreprocessConfig()  # the YAML files leave the section out
    assert "preprocess" in UNHASHED_SECTIONS
    changed = load_config("quick", ["preprocess.stride=3", "preprocess.vggish=weights/vggish"])
    assert (changed.preprocess.stride, changed.preprocess.vggish) == (3, "weights/vggish")
    assert config_hash(changed) == config_hash(quick)
    assert load_config("quick", {"preprocess": {"faces": False}}).preprocess == PreprocessConfig(faces=False)
    # A run folder's config.yaml written before the section existed reads back as the same config.
    old = quick.to_dict()
    del old["preprocess"]
    assert Config.from_dict(old) == quick
    with pytest.raises(ConfigError, match=r"preprocess\.stride: expected an integer"):
        load_config("quick", ["preprocess.stride=two"])
    with pytest.raises(ConfigError, match=r"preprocess\.bogus: unknown key"):
        load_config("quick", ["preprocess.bogus=1"])
    for key, bad, bound in (("stride", 0, ">= 1"), ("input_size", 31, ">= 32")):
        with pytest.raises(ConfigError, match=rf"preprocess\.{key}: {bad} out of range \(must be {bound}\)"):
            load_config("quick", [f"preprocess.{key}={bad}"])
    assert load_config("quick", ["preprocess.stride=1", "preprocess.input_size=32"]).preprocess.input_size == 32


def test_preprocess_flags_meet_the_sections_checks(capsys):
    from harness.cli import build_parser

    parser = build_parser("preprocess")
    args = parser.parse_args(["preprocess", "in", "--out", "o", "--stride", "3", "--input-size", "640"])
    assert (args.stride, args.input_size) == (3, 640)
    # the defaults come from the section
    assert parser.parse_args(["preprocess", "in", "--out", "o"]).stride == PreprocessConfig().stride
    for flag, text, said in (("--stride", "0", "0 out of range (must be >= 1)"),
                             ("--stride", "two", "expected an integer, got str 'two'"),
                             ("--input-size", "16", "16 out of range (must be >= 32)")):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(["preprocess", "in", "--out", "o", flag, text])
        assert exit_.value.code == 2
        assert f"argument {flag}: {said}" in capsys.readouterr().err


def test_named_configs_are_found_beside_the_package():
    assert CONFIG_DIR.name == "configs" and CONFIG_DIR.parent.name == "harness"
    assert {p.stem for p in CONFIG_DIR.glob("*.yaml")} >= {"paper", "demo", "quick"}


@pytest.mark.parametrize("command", ["train", "folds", "ablate", "demo"])
def test_every_command_with_a_config_takes_the_shared_arguments(command):
    import argparse

    from harness.cli import build_parser

    sub = build_parser(command)._subparsers._group_actions[0].choices[command]
    shared = argparse.ArgumentParser()
    add_override_argument(shared)
    want = next(a for a in shared._actions if "--set" in a.option_strings)
    got = next(a for a in sub._actions if "--set" in a.option_strings)
    assert (got.dest, got.help, got.metavar, got.default) == (want.dest, want.help, want.metavar, want.default)
    argv = ["--set", "stage2.epochs=3", "--set", "stage2.epochs=4"]
    if command == "demo":  # `--quick` picks the config
        assert not any("--config" in a.option_strings for a in sub._actions)
        return
    args = sub.parse_args(["--config", "quick", "--data", "d", "--out", "o", *argv])
    assert config_from_args(args) == load_config("quick", ["stage2.epochs=4"])
