"""`--seeds`: each (fold, row) trained once per stage-2 seed in its own folder, tables with mean ± std over seeds
beside the interval of the seed-mean score, paired differences of seed-mean scores, resumption per (fold, row, seed).

The experiment runs in-process on the tiny synthetic corpus (stage 1 off, one epoch per run, fold 0 with three
labelled test videos so that every run has an interval): four runs in all (BDCA and Only Audio, seeds 0 and 1).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from harness.cli import main
from harness.config import ConfigError, config_hash, load_config
from harness.experiments.ablation import run_ablation
from harness.experiments.folds import ExperimentRun, run_folds
from harness.experiments.intervals import paired_seed_ci, seed_mean_ci
from harness.folders.experiment import run_dir_for
from harness.folders.run import RunDir
from harness.reporting.tables import score_cell
from harness.stages.skeleton import StageResult
from submissions import MetricError
from submissions.bootstrap import (
    RESAMPLES,
    SEED,
    bootstrap_ci,
    cluster_stats,
    draw_counts,
    paired_bootstrap,
    resampled_scores,
)
from tests.harness._corpus import make_corpus
from tests.harness._stage2 import settings as stage2_settings

OVERRIDES = stage2_settings(
    "stage1.enabled=false", "stage2.epochs=1", "experiment.k=3", "experiment.folds=[0]",
    "experiment.ablation_folds=[0]", "experiment.ablation_models=[audio_only, bdca]", "experiment.table3=false",
)  # fmt: skip
SEEDS = [0, 1]


class _StopError(Exception):
    """Stands for a kill: raised by the run callback after the first finished run."""


def _snapshot(run: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime in ns) of every file of one run folder (not its seed subfolders): a rewrite changes both."""
    return {str(f.relative_to(run)): (f.stat().st_ino, f.stat().st_mtime_ns) for f in run.rglob("*")
            if f.is_file() and not f.relative_to(run).parts[0].startswith("seed")}  # fmt: skip


# -- the bootstrap of the seed mean (pure) ----------------------------------------------------------------------


def _stats(seed: int, videos: int = 6, noise: float = 0.3, names: list[str] | None = None):
    rng = np.random.default_rng(seed)
    names = names or [f"v{i}" for i in range(videos)]
    labels = {v: rng.uniform(-1, 1, size=(30 + 5 * i, 2)) for i, v in enumerate(names)}
    truth_rng = np.random.default_rng(1000 + seed)
    preds = {v: y + noise * truth_rng.normal(size=y.shape) for v, y in labels.items()}
    return labels, preds


def _seed_runs(seeds: int, fold_seed: int = 0):
    """Statistics of one fold's labels predicted by `seeds` different "seeds" (different prediction noise)."""
    labels, _ = _stats(fold_seed)
    out = []
    for s in range(seeds):
        rng = np.random.default_rng([fold_seed, s])
        preds = {v: y + (0.2 + 0.2 * s) * rng.normal(size=y.shape) for v, y in labels.items()}
        out.append(cluster_stats(labels, preds))
    return out


def test_one_seed_is_exactly_the_plain_bootstrap():
    a, b = _seed_runs(1, 0), _seed_runs(1, 1)
    assert seed_mean_ci([a, b]) == bootstrap_ci([a[0], b[0]])
    assert paired_seed_ci([a], [_seed_runs(1, 0)]) == paired_bootstrap([a[0]], [_seed_runs(1, 0)[0]])


def test_seed_mean_interval_scores_every_seed_on_the_same_draws():
    folds = [_seed_runs(3, 0), _seed_runs(3, 1)]
    ci = seed_mean_ci(folds)
    # By hand: per fold one draw of its clusters, every seed scored on it, seeds averaged, then folds.
    samples = np.mean([np.mean([resampled_scores(s, draw_counts(reps[0].clusters, RESAMPLES, SEED, k))
                                for s in reps], axis=0) for k, reps in enumerate(folds)], axis=0)  # fmt: skip
    lo, hi = np.nanquantile(samples, [0.025, 0.975], axis=0)
    est = np.mean([np.mean([s.estimate for s in reps], axis=0) for reps in folds], axis=0)
    for i, m in enumerate(("ccc_v", "ccc_a", "p_va")):
        assert ci[m].estimate == pytest.approx(est[i], abs=1e-12)
        assert (ci[m].low, ci[m].high) == pytest.approx((lo[i], hi[i]), abs=1e-12)
        assert ci[m].low <= ci[m].estimate <= ci[m].high
    assert ci.folds == 2 and ci.clusters == sum(r[0].clusters for r in folds) and ci.reason is None
    # Averaging seeds scored on the same draws: the interval is no wider than the widest single seed's.
    widths = [bootstrap_ci([folds[0][j], folds[1][j]]).p_va for j in range(3)]
    assert ci.p_va.high - ci.p_va.low <= max(w.high - w.low for w in widths) + 1e-12
    # Two identical seeds are one seed.
    same = [[reps[0], reps[0]] for reps in folds]
    assert seed_mean_ci(same).p_va == bootstrap_ci([reps[0] for reps in folds]).p_va


def test_paired_seed_differences():
    a, b = [_seed_runs(2, 0)], [_seed_runs(2, 0)[::-1]]  # the same runs in another seed order: no difference
    d = paired_seed_ci(a, b)
    assert d.p_va.estimate == pytest.approx(0.0, abs=1e-12) and d.p_va.verdict == "not resolved"
    good = [[cluster_stats(*_stats(0, noise=0.05)), cluster_stats(*_stats(0, noise=0.06))]]
    bad = [[cluster_stats(*_stats(0, noise=2.0)), cluster_stats(*_stats(0, noise=2.5))]]
    d = paired_seed_ci(good, bad)
    est = np.mean([s.estimate[2] for s in good[0]]) - np.mean([s.estimate[2] for s in bad[0]])
    assert d.p_va.estimate == pytest.approx(est, abs=1e-12) and d.p_va.low > 0 and d.p_va.verdict == "resolved"
    other = [[cluster_stats(*_stats(0, names=["x1", "x2", "x3"])), cluster_stats(*_stats(1, names=["x1", "x2", "x3"]))]]
    with pytest.raises(MetricError, match="same videos"):
        paired_seed_ci(good, other)
    with pytest.raises(MetricError, match="same videos"):
        seed_mean_ci([[good[0][0], other[0][0]]])
    with pytest.raises(MetricError, match="folds"):
        paired_seed_ci(good, [*bad, *bad])


def test_score_cell():
    assert score_cell(0.6904, 0.61, 0.75) == "0.690 [0.61, 0.75]"
    assert score_cell(0.6904, 0.61, 0.75, 0.0123) == "0.690 ± 0.012 [0.61, 0.75]"
    assert score_cell(0.6904, math.nan, math.nan, 0.0123) == "0.690 ± 0.012"
    assert score_cell(math.nan, math.nan, math.nan, 0.01) == "-"


# -- folders, config, CLI ---------------------------------------------------------------------------------------


def test_run_folders_keep_todays_path_for_the_config_seed(tmp_path):
    cfg = load_config("demo", ["seed=3"])  # the demo reads the fine-tuned `visual` features, Table III also the others
    assert run_dir_for(tmp_path, cfg, 2) == run_dir_for(tmp_path, cfg, 2, seed=3) == tmp_path / "folds" / "fold2"
    assert run_dir_for(tmp_path, cfg, 2, seed=0) == tmp_path / "folds" / "fold2" / "seed0"
    assert run_dir_for(tmp_path, cfg, 1, "concat", seed=4) == tmp_path / "ablation" / "concat" / "fold1" / "seed4"
    assert run_dir_for(tmp_path, cfg, 1, "visual_only", "visual_mae", seed=3) == (
        tmp_path / "ablation" / "visual_only_visual_mae" / "fold1")  # fmt: skip


def test_config_seeds_default_to_the_seed_and_are_checked():
    assert load_config("quick").experiment.seeds == () and load_config("quick").stage2_seeds == (0,)
    assert load_config("demo").stage2_seeds == (0,) and load_config("paper").stage2_seeds == (0,)
    assert load_config("quick", ["seed=7"]).stage2_seeds == (7,)  # derived, never typed twice
    assert load_config("quick", ["experiment.seeds=[2, 5]"]).stage2_seeds == (2, 5)
    with pytest.raises(ConfigError, match=r"experiment\.seeds.*twice"):
        load_config("quick", ["experiment.seeds=[1, 1]"])
    with pytest.raises(ConfigError, match=r"experiment\.seeds"):
        load_config("quick", ["experiment.seeds=[-1]"])
    # The experiment section is not hashed, the seed is: another seed is another run.
    cfg = load_config("quick")
    assert config_hash(cfg.replace(**{"experiment.seeds": [0, 1]})) == config_hash(cfg)
    assert config_hash(cfg.replace(seed=1)) != config_hash(cfg)


def test_cli_refuses_bad_seeds(tmp_path, capsys):
    layout, cache = make_corpus(tmp_path / "corpus", train=3, val=2, test=1)
    args = ["--config", "quick", "--data", str(layout.root), "--cache", str(cache.root), "--out", str(tmp_path / "x"),
            "--no-progress"]  # fmt: skip
    assert main(["folds", *args, "--seeds", "0,a"]) == 2
    assert "--seeds '0,a'" in capsys.readouterr().err
    assert main(["ablate", *args, "--seeds", "1,1"]) == 2
    assert "experiment.seeds" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# -- an experiment with two seeds, interrupted after its first run ---------------------------------------------


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    layout, cache = make_corpus(tmp_path_factory.mktemp("corpus"), train=5, val=3, test=3)
    cfg = load_config("quick", OVERRIDES)
    out = tmp_path_factory.mktemp("exp")
    seed0, seed1 = run_dir_for(out, cfg, 0), run_dir_for(out, cfg, 0, seed=1)

    def stop(res: StageResult) -> None:
        raise _StopError

    with pytest.raises(_StopError):
        run_folds(cfg, layout, cache, out, seeds=SEEDS, on_result=stop)
    interrupted = {"seed0": RunDir(seed0).final_record() is not None, "seed1": seed1.exists(),
                   "table": (out / "table_I.csv").exists(), "before": _snapshot(seed0)}  # fmt: skip
    seen: list[ExperimentRun] = []
    t1 = run_folds(cfg, layout, cache, out, seeds=SEEDS, on_result=seen.append)
    return layout, cache, cfg, out, interrupted, seen, t1


def test_a_rerun_after_the_first_seed_trains_only_the_missing_one(experiment):
    _, _, cfg, out, interrupted, seen, _ = experiment
    seed0, seed1 = run_dir_for(out, cfg, 0), run_dir_for(out, cfg, 0, seed=1)
    assert interrupted["seed0"] and not interrupted["seed1"] and not interrupted["table"]
    assert [(r.seed, r.skipped, r.run_dir) for r in seen] == [(0, True, seed0), (1, False, seed1)]
    after = _snapshot(seed0)  # the finished seed: untouched but for the interval file its table added
    assert set(after) - set(interrupted["before"]) == {"bootstrap.json"}
    assert {k: v for k, v in after.items() if k in interrupted["before"]} == interrupted["before"]


def test_both_seeds_trained_as_different_runs(experiment):
    _, _, cfg, out, _, _, t1 = experiment
    a, b = (RunDir(run_dir_for(out, cfg, 0, seed=s)) for s in SEEDS)
    ra, rb = a.final_record(), b.final_record()
    assert ra is not None and rb is not None and ra["config_hash"] != rb["config_hash"]
    assert yaml.safe_load((b.path / "config.yaml").read_text())["seed"] == 1
    assert yaml.safe_load((a.path / "config.yaml").read_text())["seed"] == 0
    assert ra["test"]["p_va"] != rb["test"]["p_va"]  # another initialisation and data order
    assert [r.run_dir for r in t1.results] == [a.path, b.path] and t1.seeds == (0, 1)
    assert all(t1.interval(r) is not None for r in t1.results)


def test_table_one_shows_mean_and_std_over_seeds_beside_the_interval(experiment):
    _, _, cfg, out, _, seen, t1 = experiment
    df = pl.read_csv(out / "table_I.csv")
    fold0 = df.filter(pl.col("row") == "Fold 0").to_dicts()[0]
    runs = [r.reported["p_va"] for r in t1.results]
    assert fold0["average"] == pytest.approx(np.mean(runs), abs=1e-4)
    assert fold0["average_std"] == pytest.approx(np.std(runs, ddof=1), abs=1e-4) and fold0["average_std"] > 0
    assert fold0["seeds"] == "0,1" and fold0["average_low"] <= fold0["average_high"]
    ci = seed_mean_ci([[r.stats for r in t1.results]])
    assert (fold0["average_low"], fold0["average_high"]) == pytest.approx((ci.p_va.low, ci.p_va.high), abs=1e-4)
    md = (out / "table_I.md").read_text()
    shown = score_cell(fold0["average"], fold0["average_low"], fold0["average_high"], fold0["average_std"])
    assert shown in md and " ± " in shown and "standard deviation over the stage-2 seeds 0,1" in md
    assert "mean over seeds 0,1" in md
    doc = json.loads((out / "table_I.json").read_text())
    assert doc["seeds"] == [0, 1] and "seeds" in doc["bootstrap"]
    assert describe_line(seen[1]).startswith(f"bdca fold 0 seed 1: trained in {run_dir_for(out, cfg, 0, seed=1)}")


def describe_line(res: ExperimentRun) -> str:
    from harness.experiments.rows import describe_result

    line = describe_result(res)
    assert res.ci is not None and f"[{res.ci.p_va.low:.2f}, {res.ci.p_va.high:.2f}] on test)" in line
    return line


def test_a_second_rerun_reuses_every_run_and_rewrites_no_file(experiment, capsys):
    layout, cache, cfg, out, _, _, _ = experiment
    runs = [run_dir_for(out, cfg, 0, seed=s) for s in SEEDS]
    before = [_snapshot(r) for r in runs]
    table = (out / "table_I.csv").read_text()
    args = ["--config", "quick", "--data", str(layout.root), "--cache", str(cache.root), "--out", str(out),
            "--no-progress", *[a for o in OVERRIDES for a in ("--set", o)], "--seeds", "0,1"]  # fmt: skip
    capsys.readouterr()
    assert main(["folds", *args]) == 0
    text = capsys.readouterr().out
    assert runs, "the loop below checks nothing"
    for s, r in zip(SEEDS, runs, strict=True):
        assert f"bdca fold 0 seed {s}: reused the finished run in {r}" in text
    assert [_snapshot(r) for r in runs] == before
    assert (out / "table_I.csv").read_text() == table


def test_ablation_with_seeds_pairs_seed_means(experiment):
    layout, cache, cfg, out, _, _, _ = experiment
    (iv,) = run_ablation(cfg, layout, cache, out, seeds=SEEDS)
    by = {(r.model, r.seed): r for r in iv.results}
    assert set(by) == {(m, s) for m in ("audio_only", "bdca") for s in SEEDS}
    assert by["bdca", 0].skipped and by["bdca", 1].skipped  # Table I's runs, both seeds
    assert not by["audio_only", 1].skipped and by["audio_only", 1].run_dir == run_dir_for(out, cfg, 0, "audio_only",
                                                                                          seed=1)  # fmt: skip
    table = pl.read_csv(out / "table_IV.csv")
    audio = table.filter(pl.col("row") == "Only Audio").to_dicts()[0]
    scores = [by["audio_only", s].reported["p_va"] for s in SEEDS]
    assert audio["average"] == pytest.approx(np.mean(scores), abs=1e-4)
    assert audio["average_std"] == pytest.approx(np.std(scores, ddof=1), abs=1e-4)
    paired = pl.read_csv(out / "table_IV_paired.csv").to_dicts()
    assert [p["comparison"] for p in paired] == ["Only Audio - BDCA"] and paired[0]["seeds"] == "0,1"
    d = paired_seed_ci([[by["audio_only", s].stats for s in SEEDS]], [[by["bdca", s].stats for s in SEEDS]])
    assert paired[0]["d_average"] == pytest.approx(d.p_va.estimate, abs=1e-4)
    assert paired[0]["average_verdict"] == d.p_va.verdict
    est = np.mean([by["audio_only", s].stats.estimate[2] - by["bdca", s].stats.estimate[2] for s in SEEDS])
    assert d.p_va.estimate == pytest.approx(est, abs=1e-12)
    assert " ± " in (out / "table_IV.md").read_text()


def test_one_seed_experiment_is_unchanged(experiment, tmp_path):
    """Without seeds (the config's seed alone): today's folders, no seed level, no ± in the tables."""
    layout, cache, cfg, _, _, _, _ = experiment
    out = tmp_path / "one"
    t = run_folds(cfg, layout, cache, out, folds=[0])
    assert [r.run_dir for r in t.results] == [run_dir_for(out, cfg, 0)] == [out / "folds" / "fold0"]
    assert not list(out.rglob("seed*"))
    df = pl.read_csv(out / "table_I.csv")
    assert df["seeds"].to_list()[0] == "0" and math.isnan(df["average_std"][0])
    assert "±" not in (out / "table_I.md").read_text()
    assert json.loads((out / "table_I.json").read_text())["seeds"] == [0]
