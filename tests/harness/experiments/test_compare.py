"""`harness compare` (Table II measured): BDCA and rival fusion models trained alike on the tiny synthetic corpus,
scored with intervals and paired verdicts against BDCA, their cost measured in the same run, resumable; and the
config's `zoo` section (per-model parameters, hashed only for a rival's own run)."""

from __future__ import annotations

import json
import math

import polars as pl
import pytest
import torch

from harness.cli import main
from harness.config import ConfigError, config_hash, load_config
from harness.experiments.compare import COST_SCHEMA, check_models, run_compare, self_reported_table, time_train_step
from harness.folders.experiment import run_dir_for
from harness.folders.run import RunDir
from harness.reporting.report import collect_report, write_report
from models.flops import count_flops, count_params
from models.registry import build_model
from models.zoo import ZOO, LFANConfig
from tests.harness._corpus import make_corpus
from tests.harness._stage2 import settings as stage2_settings

OVERRIDES = stage2_settings(
    "stage1.enabled=false", "stage2.epochs=1", "experiment.k=3", "experiment.ablation_folds=[0]",
    "zoo.lfan.tcn_channels=8", "zoo.tcn_transformer.tcn_channels=8", "zoo.tcn_transformer.dim_feedforward=16",
    "zoo.mamba_va.tcn_channels=8", "zoo.mamba_va.d_state=4",
)  # fmt: skip
RIVALS = ["lfan", "tcn_transformer", "mamba_va"]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    layout, cache = make_corpus(tmp_path_factory.mktemp("corpus"), train=4, val=2, test=3)
    cfg = load_config("quick", OVERRIDES)
    out = tmp_path_factory.mktemp("exp")
    seen: list = []
    report = run_compare(cfg, layout, cache, out, RIVALS, on_result=seen.append)
    return layout, cache, cfg, out, report, seen


def test_every_model_is_trained_like_bdca_and_scored_with_an_interval(compared):
    _, _, cfg, out, report, seen = compared
    assert report.table["row"].to_list() == ["BDCA", *RIVALS]
    assert [r.model for r in seen] == ["bdca", *RIVALS] and not any(r.skipped for r in seen)
    for r in seen:
        run_cfg = load_config(RunDir(r.run_dir).config_file)
        # The same features, windows, epochs, fold and seed; only the model differs.
        for section in ("features", "windows", "stage2", "data", "seed"):
            assert getattr(run_cfg, section) == getattr(cfg, section), section
        assert r.fold == 0 and r.reported_on == "test"
    assert seen[0].run_dir == run_dir_for(out, cfg, 0, "bdca")
    # The run's own record names the state-space library of the Mamba rival, and only there.
    backends = {r.model: r.record.get("ssm_backend") for r in seen}
    assert backends == {"bdca": None, "lfan": None, "tcn_transformer": None, "mamba_va": "mambapy"}
    # The paper columns hold the self-reported Table II rows of the same papers: BDCA's, and Charon's for mamba_va
    # (Liang et al., arXiv 2503.10104); no other rival is a row of the paper's table.
    paper = dict(zip(report.table["row"], report.table["paper_average"], strict=True))
    assert paper.pop("BDCA") == pytest.approx(0.632) and paper.pop("mamba_va") == pytest.approx(0.458)
    assert all(math.isnan(x) for x in paper.values())
    for row in report.table.iter_rows(named=True):
        assert row["average_low"] <= row["average"] <= row["average_high"]
        assert row["average"] == pytest.approx((row["valence"] + row["arousal"]) / 2)


def test_paired_differences_against_bdca_carry_verdicts(compared):
    _, _, _, _, report, seen = compared
    paired = report.paired
    assert paired["comparison"].to_list() == [f"{m} - BDCA" for m in RIVALS]
    by_model = {r.model: r.reported["p_va"] for r in seen}
    for row in paired.iter_rows(named=True):
        # The bootstrap reads the saved float32 predictions, the record the float64 ones: equal to 1e-6.
        assert row["d_average"] == pytest.approx(by_model[row["row"]] - by_model["bdca"], abs=1e-6)
        lo, hi = row["d_average_low"], row["d_average_high"]
        assert lo <= row["d_average"] <= hi
        assert row["average_verdict"] == ("resolved" if lo > 0 or hi < 0 else "not resolved")


def test_cost_is_measured_for_every_model(compared):
    _, _, cfg, _, report, _ = compared
    cost = report.cost
    assert cost.schema == pl.Schema(COST_SCHEMA)
    assert cost["model"].to_list() == ["bdca", *RIVALS]
    for row in cost.iter_rows(named=True):
        config = cfg.temporal_config(row["model"])
        assert row["params"] == count_params(build_model(config)).total
        assert row["gflops_window"] == pytest.approx(count_flops(config, T=cfg.windows.length) / 1e9)
        assert row["train_step_ms"] > 0 and math.isfinite(row["predict_fps"]) and row["predict_fps"] > 0
        assert row["predict_frames"] > 0 and row["device"] == "cpu"
        assert row["backend"] == ("mambapy" if row["model"] == "mamba_va" else "torch")  # no CUDA here
    # A smaller rival costs fewer FLOPs than BDCA at these sizes (the counter is not a constant).
    assert cost["gflops_window"][1] < cost["gflops_window"][0]


def test_files_hold_the_measured_table_beside_the_self_reported_one(compared):
    _, _, _, out, report, _ = compared
    names = {f.name for f in report.files}
    assert {"table_II_measured.csv", "table_II_measured.md", "table_II_measured.json",
            "table_II_measured_paired.csv", "table_II_measured_cost.csv", "table_II_self_reported.csv"} <= names
    md = (out / "table_II_measured.md").read_text(encoding="utf-8")
    assert "Table II (measured)" in md and "self-reported" in md and "Charon" in md and "lfan - BDCA" in md
    doc = json.loads((out / "table_II_measured.json").read_text(encoding="utf-8"))
    assert [r["row"] for r in doc["cost"]] == ["BDCA", *RIVALS]
    assert [r["row"] for r in doc["self_reported"]] == self_reported_table()["row"].to_list()
    assert "BDCA" in doc["self_reported"][-1]["row"]


def test_a_rerun_reuses_every_finished_run(compared):
    layout, cache, cfg, out, report, _ = compared
    before = (out / "table_II_measured.csv").read_bytes()
    seen: list = []
    run_compare(cfg, layout, cache, out, RIVALS, on_result=seen.append)
    assert [r.skipped for r in seen] == [True] * 4
    assert (out / "table_II_measured.csv").read_bytes() == before  # the same scores, intervals and verdicts
    seen.clear()
    again = run_compare(cfg, layout, cache, out, ["tcn_transformer", "lfan", "bdca"], on_result=seen.append)
    assert [r.skipped for r in seen] == [True, True, True]
    assert again.table["row"].to_list() == ["BDCA", "tcn_transformer", "lfan"]
    run_compare(cfg, layout, cache, out, RIVALS)  # the module's later tests read the table of every rival
    assert again.table.filter(pl.col("row") == "lfan")["average"][0] == report.table["average"][1]


def test_train_step_timing_leaves_the_random_state_alone():
    cfg = load_config("quick", OVERRIDES)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    assert time_train_step(cfg, "lfan", steps=1) > 0
    assert torch.equal(torch.rand(3), expected)


def test_unknown_models_are_refused_before_anything_runs(tmp_path, capsys):
    with pytest.raises(ConfigError, match="not stage-2 models"):
        check_models(["lfan", "nope"])
    assert check_models(["dca", "lfan", "dca"]) == ["bdca", "dca", "lfan"]
    layout, cache = make_corpus(tmp_path / "corpus", train=3, val=2, test=1)
    args = ["--config", "quick", "--data", str(layout.root), "--cache", str(cache.root), "--out", str(tmp_path / "x"),
            "--no-progress"]  # fmt: skip
    assert main(["compare", *args, "--models", "lfan,bogus"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_zoo_section_sizes_the_rivals_and_is_hashed_only_for_their_runs():
    cfg = load_config("quick", OVERRIDES)
    lfan = cfg.temporal_config("lfan")
    assert isinstance(lfan, LFANConfig) and lfan.tcn_channels == 8 and lfan.visual_dim == cfg.visual_dim
    assert lfan.attn_dim == 16  # the demo's value, inherited by quick
    changed = cfg.replace(**{"zoo.lfan.attn_dim": 4})
    assert changed.temporal_config("lfan").attn_dim == 4
    # BDCA's run keeps its hash (its finished folders stay valid); a rival's run hashes its own mapping only.
    assert config_hash(changed) == config_hash(cfg)
    as_lfan = cfg.replace(**{"model.name": "lfan"})
    assert config_hash(as_lfan.replace(**{"zoo.lfan.attn_dim": 4})) != config_hash(as_lfan)
    assert config_hash(as_lfan.replace(**{"zoo.jca.attn_dim": 4})) == config_hash(as_lfan)
    with pytest.raises(ConfigError, match=r"zoo\.lfan"):
        load_config("quick", ["zoo.lfan.attn_dim=0"])
    with pytest.raises(ConfigError, match=r"zoo\.mult\.bogus"):
        load_config("quick", ["zoo.mult.bogus=1"])
    assert set(ZOO) == {f for f in cfg.to_dict()["zoo"]}


def test_the_html_report_shows_table_ii_measured_with_its_verdicts_and_cost(compared, tmp_path):
    _, _, _, out, report, _ = compared
    rep = collect_report(out)
    titles = [t.title for t in rep.tables]
    assert titles[0].startswith("Table II (measured)") and titles[1] == "Table II (measured): paired differences"
    cost = next(t for t in rep.tables if t.title.startswith("Table II (measured): cost"))
    shown = [r[0] for r in cost.rows]  # a test before may have rewritten the table with the rivals reordered
    assert shown[0] == "BDCA" and sorted(shown[1:]) == sorted(RIVALS)
    verdicts = {r[0]: r for r in rep.tables[1].rows}
    assert set(verdicts) == {f"{m} - BDCA" for m in RIVALS}
    html = write_report(out, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Table II (measured)" in html and "lfan - BDCA" in html
    assert report.paired["average_verdict"][0] in html


def test_a_config_of_another_model_never_trains_bdca_into_its_folder(compared):
    """With `model.name` another model, `<out>/folds/` is that model's: BDCA's row goes under ablation/bdca/."""
    layout, cache, cfg, out, _, _ = compared
    folds0 = out / "folds" / "fold0"
    before = {f: f.stat().st_mtime_ns for f in folds0.rglob("*") if f.is_file()}
    seen: list = []
    run_compare(cfg.replace(**{"model.name": "concat"}), layout, cache, out, ["bdca"], on_result=seen.append)
    assert [r.run_dir for r in seen] == [out / "ablation" / "bdca" / "fold0"]
    assert {f: f.stat().st_mtime_ns for f in folds0.rglob("*") if f.is_file()} == before
