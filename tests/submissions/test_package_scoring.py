"""Scoring files, packaging submissions, safe extraction, and the recorded leaderboard."""

from __future__ import annotations

import os
import stat
import zipfile

import numpy as np
import pytest

from core.atomic import DiskFullError, atomic_open, atomic_write_text
from core.errors import HarnessError
from submissions import FormatError
from submissions.formats import image_location, write_annotation, write_per_video, write_submission
from submissions.leaderboard import (
    check_recorded,
    fixture_scores,
    leaderboard,
    load_recorded,
    paper_rows,
    platform_differences,
    scoring_fixture,
)
from submissions.metrics import score_va
from submissions.package import (
    UnsafeArchiveError,
    package_submission,
    safe_extract,
    verify_package,
)
from submissions.scoring import score_files, score_predictions


@pytest.fixture
def abaw(tmp_path):
    """Labels in the Aff-Wild2 layout, a sample file and predictions."""
    labels, preds = scoring_fixture(videos=3, frames=120)
    ann = tmp_path / "annotations" / "VA_Estimation_Challenge" / "Test_Set"
    for v, lab in labels.items():
        write_annotation(ann / f"{v}.txt", lab)
    sample = tmp_path / "VA_test_set_sample.txt"
    locs = [image_location(v, i + 1) for v in sorted(labels) for i in range(labels[v].shape[0])]
    sample.write_text("image_location,valence,arousal\n" + "".join(f"{loc},0,0\n" for loc in locs))
    return tmp_path, ann, sample, labels, preds


def test_score_files_matches_global_ccc_both_layouts(abaw):
    root, ann, sample, labels, preds = abaw
    single = write_submission(root / "pred.csv", preds, sample)
    per_video = write_per_video(root / "pred_dir", preds)
    vids = sorted(labels)
    want = score_va(np.concatenate([labels[v] for v in vids]), np.concatenate([preds[v] for v in vids]))
    for src in (single, per_video):
        rep = score_files(src, ann)
        assert rep.total.p_va == pytest.approx(want.p_va, abs=1e-5)
        assert rep.total.dropped == want.dropped == 90
        assert rep.videos == 3


def test_score_names_missing_and_short_videos(abaw):
    _, _, _, labels, preds = abaw
    v0, v1 = sorted(labels)[:2]
    with pytest.raises(FormatError, match=f"no predictions for labelled video '{v0}'"):
        score_predictions({k: p for k, p in preds.items() if k != v0}, labels)
    short = dict(preds)
    short[v1] = short[v1][:-1]
    with pytest.raises(FormatError, match="119 predicted frames, 120 labelled"):
        score_predictions(short, labels)


def test_package_unzips_and_revalidates(abaw, tmp_path):
    root, _, sample, _, preds = abaw
    pred = write_submission(root / "pred.csv", preds, sample)
    meta = {"git_hash": "abc123", "summary": {"model": "bdca", "folds": {"0": {"p_va": 0.5}}}, "command": "x"}
    pkg = package_submission(pred, sample, root / "out" / "sub.zip", metadata=meta)
    manifest = verify_package(pkg.path, sample, tmp_path / "unzipped")
    assert manifest["git_hash"] == "abc123" and manifest["command"] == "x"
    assert manifest["summary"]["folds"]["0"]["p_va"] == 0.5
    assert manifest["source"] == str(pred)
    assert len(manifest["files"]["predictions.csv"]) == 64
    with zipfile.ZipFile(pkg.path) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "predictions.csv"]


def test_package_takes_a_prediction_file_not_a_folder(abaw):
    """A run folder's layout is the harness's (`harness.folders.run.resolve_prediction`): a folder is refused by
    name."""
    root, _, sample, _, _ = abaw
    with pytest.raises(HarnessError, match="is a folder; give the prediction file"):
        package_submission(root, sample, root / "never.zip")
    assert not (root / "never.zip").exists()


def test_package_refuses_invalid_file(abaw):
    root, _, sample, _, preds = abaw
    pred = write_submission(root / "p.csv", preds, sample)
    lines = pred.read_text().splitlines()
    pred.write_text("\n".join(lines[:-5]) + "\n")
    with pytest.raises(FormatError, match="missing 5 row"):
        package_submission(pred, sample, root / "never.zip")
    assert not (root / "never.zip").exists()


def _zip_with(path, name, data=b"x", link=False):
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo(name)
        if link:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, data)
    return path


@pytest.mark.parametrize(
    ("name", "link", "match"),
    [("../evil.txt", False, "climbs out"), ("a/../../evil.txt", False, "climbs out"),
     ("/etc/evil.txt", False, "absolute"), ("link", True, "symbolic link")],
)
def test_safe_extract_rejects_unsafe_members(tmp_path, name, link, match):
    z = _zip_with(tmp_path / "bad.zip", name, b"/etc/passwd" if link else b"x", link)
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchiveError, match=match):
        safe_extract(z, dest)
    assert not (tmp_path / "evil.txt").exists()
    assert not dest.exists() or not any(dest.rglob("*"))


def test_safe_extract_not_a_zip(tmp_path):
    (tmp_path / "x.zip").write_text("hello")
    with pytest.raises(HarnessError, match="not a valid zip"):
        safe_extract(tmp_path / "x.zip", tmp_path / "d")


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = atomic_write_text(tmp_path / "f.txt", "old")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("half of the new")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_atomic_write_disk_full_is_clear(tmp_path, monkeypatch):
    target = atomic_write_text(tmp_path / "f.txt", "old")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFullError, match=r"no space left.*intact"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_paper_tables_and_leaderboard():
    t2 = paper_rows("II")
    assert [e.name for e in t2][:2] == ["Baseline", "CAS-MAIS"] and len(t2) == 9
    bdca = next(e for e in t2 if e.name == "BDCA")
    assert (bdca.ccc_v, bdca.ccc_a, bdca.p_va) == (0.605, 0.658, 0.632)
    for table in ("I", "II", "III", "IV"):
        for e in paper_rows(table):
            # the paper rounds; its averages agree with (V + A) / 2 to the third decimal
            assert abs((e.ccc_v + e.ccc_a) / 2 - e.p_va) <= 0.0011, e
            assert e.source
    from submissions.leaderboard import Entry

    df = leaderboard([Entry("ours", 0.6, 0.65, 0.625, "run")])
    # Ours first (their own group), then the paper's rows of Table II sorted by P_VA, BDCA on top.
    assert df["name"].to_list()[:2] == ["ours", "BDCA"]
    assert df["group"].to_list()[:2] == ["validation", "paper Table II"] and df["rank"].to_list()[:2] == [1, 1]
    assert df.filter(df["name"] == "ours")["delta"][0] == pytest.approx(-0.007)


PLAT = {"machine": "x86_64", "cpu_vendor": "AuthenticAMD", "cpu_model": "AMD EPYC", "aten_capability": "avx2",
        "torch": "2.14.1", "numpy": "2.4", "mkl": "2024.2", "onednn": "3.12.0", "threads": 1, "device": "cpu"}


def test_recorded_fixture_holds_to_1e_9():
    res = check_recorded(fixture_scores(), load_recorded())
    assert res.mode == "fixture" and res.ok and len(res.rows) == 3
    moved = {**fixture_scores(), "fixture/p_va": fixture_scores()["fixture/p_va"] + 1e-8}
    assert check_recorded(moved, load_recorded()).rose == ["fixture/p_va"]


def test_a_capped_kernel_level_is_not_another_machine():
    """ATEN_CPU_CAPABILITY caps ATen only (MKL and oneDNN keep the CPU's own paths): an AVX-512 CPU capped to avx2
    shows the recording's kernel level and model name, and is still another platform, naming the CPU's level."""
    recording = dict(PLAT)  # written before `cpu_isa` existed, uncapped: its CPU's level is its kernel level
    same_machine = {**PLAT, "cpu_isa": "avx2", "aten_capability_env": ""}
    capped = {**PLAT, "cpu_isa": "avx512", "aten_capability_env": "avx2"}
    assert platform_differences(recording, same_machine) == []
    assert platform_differences(recording, capped) == ["cpu_isa: avx2 != avx512"]
    # A capped fingerprint without `cpu_isa` cannot say what its CPU is: never an exact match.
    assert platform_differences({**PLAT, "aten_capability_env": "avx2"}, same_machine) == ["cpu_isa: None != avx2"]


def test_load_recorded_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(HarnessError, match=r"bad\.json"):
        load_recorded(bad)
    bad.write_text('{"tolerance": 0.05, "scores": {}}')
    with pytest.raises(HarnessError, match=r"bad\.json: error: needs a 'fixture'"):
        load_recorded(bad)


def test_atomic_write_uses_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "perm.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
