"""Folds: a partition by raw video (pairs together), fold 0 official; Tables I, III, IV beside the paper's rows."""

from __future__ import annotations

import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.config import load_config
from harness.data.splits import FoldError, fold_split, group_key, make_folds, reserve_videos, stage1_reserved
from harness.experiments.ablation import run_ablation
from harness.experiments.folds import run_folds
from harness.folders.experiment import run_dir_for
from tests.harness._corpus import make_corpus
from tests.harness._stage2 import settings as stage2_settings


@st.composite
def video_names(draw):
    raw = draw(st.lists(st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True), min_size=2, max_size=40, unique=True))
    names = []
    for r in raw:
        if draw(st.booleans()) and draw(st.integers(0, 4)) == 0:
            names += [f"{r}_left", f"{r}_right"]
        else:
            names.append(r)
    return names


@settings(max_examples=80, deadline=None)
@given(video_names(), st.integers(2, 6), st.integers(0, 10))
def test_folds_partition_videos_and_keep_pairs_together(names, k, seed):
    groups = {group_key(n) for n in names}
    if len(groups) < k:
        with pytest.raises(FoldError):
            make_folds(names, k, seed)
        return
    folds = make_folds(names, k, seed)
    assert len(folds) == k
    held = [v for _, val in folds for v in val]
    assert sorted(held) == sorted(names)  # every video held out exactly once
    for train, val in folds:
        assert set(train).isdisjoint(val) and sorted(train + val) == sorted(names)
        assert val  # no empty fold
        assert {group_key(v) for v in train}.isdisjoint({group_key(v) for v in val})  # a pair never straddles
    sizes = [len(val) for _, val in folds]
    assert max(sizes) - min(sizes) <= 2
    assert make_folds(names, k, seed) == folds  # deterministic


def test_seed_changes_the_assignment_and_errors():
    names = [f"v{i}" for i in range(20)]
    assert make_folds(names, 5, 0) != make_folds(names, 5, 1)
    with pytest.raises(FoldError):
        make_folds(names, 1, 0)
    with pytest.raises(FoldError):
        make_folds(["a", "a", "b"], 2, 0)


@settings(max_examples=80, deadline=None)
@given(video_names(), st.floats(0.0, 0.99), st.integers(0, 10))
def test_reserved_videos_split_by_raw_video(names, share, seed):
    kept, reserved = reserve_videos(names, share, seed)
    groups = {group_key(n) for n in names}
    assert sorted(kept + reserved) == sorted(names) and set(kept).isdisjoint(reserved)
    assert {group_key(n) for n in kept}.isdisjoint({group_key(n) for n in reserved})  # a pair never straddles
    n_reserved = len({group_key(n) for n in reserved})
    if share == 0.0:
        assert n_reserved == 0
    else:
        assert n_reserved == min(len(groups) - 1, max(1, round(share * len(groups))))
        assert kept  # stage 2 always keeps a video
    assert reserve_videos(names, share, seed) == (kept, reserved)  # deterministic


def test_reserve_errors_and_seed():
    names = [f"v{i}" for i in range(20)]
    assert reserve_videos(names, 0.3, 0)[1] != reserve_videos(names, 0.3, 1)[1]
    assert len(reserve_videos(names, 0.3, 0)[1]) == 6
    for share in (-0.1, 1.0):
        with pytest.raises(FoldError, match="share"):
            reserve_videos(names, share, 0)
    with pytest.raises(FoldError, match="cannot be split"):
        reserve_videos(["a_left", "a_right"], 0.5, 0)
    assert reserve_videos(["a_left", "a_right"], 0.0, 0) == (["a_left", "a_right"], [])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"), train=5, val=3, test=1)


def test_fold_zero_is_the_official_split(corpus):
    layout, _ = corpus
    f0 = fold_split(layout, 0, 5, 0)
    assert f0.train == tuple(e.name for e in layout.train)
    assert f0.val == tuple(e.name for e in layout.validation)
    assert f0.test == tuple(e.name for e in layout.test)
    f1 = fold_split(layout, 1, 3, 0)
    assert set(f1.train) | set(f1.val) == set(f0.train) | set(f0.val) and not f1.test
    with pytest.raises(FoldError):
        fold_split(layout, 4, 3, 0)


def test_reserved_videos_leave_every_fold(corpus):
    layout, _ = corpus
    cfg = load_config("demo", ["stage1.reserve=0.4", "experiment.fold_seed=0"])  # the quick config reserves none
    reserved = stage1_reserved(layout, cfg)
    assert reserved == reserve_videos([e.name for e in layout.train], 0.4, 0)[1]
    assert len({group_key(n) for n in reserved}) == round(0.4 * len({group_key(e.name) for e in layout.train}))
    assert set(reserved) <= {e.name for e in layout.train}
    f0 = fold_split(layout, 0, 3, 0, reserved)
    assert f0.train == tuple(e.name for e in layout.train if e.name not in reserved)
    assert f0.val == tuple(e.name for e in layout.validation)
    for i in (1, 2, 3):
        f = fold_split(layout, i, 3, 0, reserved)
        assert set(reserved).isdisjoint(f.train + f.val)
        assert set(f.train) | set(f.val) == set(f0.train) | set(f0.val)


def test_tables_beside_the_paper_and_resumable(corpus, tmp_path):
    layout, cache = corpus
    overrides = stage2_settings(
        "stage1.enabled=false", "stage2.epochs=1", "experiment.k=3", "experiment.folds=[0, 1]",
        "experiment.ablation_folds=[1]", "experiment.ablation_models=[audio_only, bdca]",
        "experiment.table3=true",  # the quick config leaves Table III out; this test reads it
    )  # fmt: skip
    cfg = load_config("quick", overrides)
    out = tmp_path / "exp"
    t1 = run_folds(cfg, layout, cache, out)
    df = pl.read_csv(out / "table_I.csv")
    assert df["row"].to_list() == ["Fold 0", "Fold 1", "Mean", "Std", "Baseline (paper)"]
    # Run folders relative to the experiment folder, so that the same experiment elsewhere writes the same tables.
    assert df["runs"].to_list()[:2] == ["folds/fold0", "folds/fold1"]
    assert str(tmp_path) not in (out / "table_I.md").read_text() + (out / "table_I.json").read_text()
    assert df.filter(pl.col("row") == "Fold 0")["paper_average"][0] == pytest.approx(0.614)
    assert df.filter(pl.col("row") == "Baseline (paper)")["paper_valence"][0] == pytest.approx(0.240)
    ours = [r.reported["p_va"] for r in t1.results]
    assert df.filter(pl.col("row") == "Mean")["average"][0] == pytest.approx(sum(ours) / 2, abs=1e-4)
    assert df["on"].to_list()[:2] == ["test", "validation"]  # fold 0 has test labels here; CV folds score held-out
    assert "Table I" in (out / "table_I.md").read_text()
    # One seed (the config's): today's run folders, no seed level, no ± in the table, no std.
    assert [r.run_dir for r in t1.results] == [out / "folds" / "fold0", out / "folds" / "fold1"]
    assert not list(out.rglob("seed*")) and "±" not in (out / "table_I.md").read_text()
    assert df["seeds"].to_list()[:2] == ["0", "0"] and all(math.isnan(x) for x in df["average_std"].to_list())

    reports = {r.name: r for r in run_ablation(cfg, layout, cache, out)}
    iv = pl.read_csv(out / "table_IV.csv")
    assert iv["row"].to_list() == ["Baseline (paper)", "Only Audio", "BDCA"]
    assert iv.filter(pl.col("row") == "BDCA")["paper_average"][0] == pytest.approx(0.632)
    # Table IV's BDCA row on fold 1 is the Table I fold-1 run, reused rather than trained again
    bdca = next(r for r in reports["IV"].results if r.model == "bdca")
    assert bdca.skipped and bdca.run_dir == run_dir_for(out, cfg, 1)
    iii = pl.read_csv(out / "table_III.csv")
    assert iii["row"].to_list() == ["MAE w/o FT", "Fuxi (paper)", "MAE"]
    assert iii.filter(pl.col("row") == "MAE w/o FT")["paper_average"][0] == pytest.approx(0.384)
    assert not math.isnan(iii.filter(pl.col("row") == "MAE w/o FT")["average"][0])
    assert (run_dir_for(out, cfg, 1, "visual_only", "visual_mae") / "summary.json").is_file()

    # Everything finished: a second call trains nothing and writes the same table.
    again = run_folds(cfg, layout, cache, out)
    assert all(r.skipped for r in again.results)
    assert pl.read_csv(out / "table_I.csv").equals(df)
    # The commands wire the same functions (and find the finished runs).
    args = ["--config", "quick", "--data", str(layout.root), "--cache", str(cache.root), "--out", str(out),
            "--no-progress", *[a for o in overrides for a in ("--set", o)]]  # fmt: skip
    assert main(["folds", *args]) == 0 and pl.read_csv(out / "table_I.csv").equals(df)
    assert main(["ablate", *args, "--models", "bdca", "--no-table3"]) == 0
    assert pl.read_csv(out / "table_IV.csv")["row"].to_list() == ["Baseline (paper)", "BDCA"]
