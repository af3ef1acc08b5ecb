"""The cases of the hostile-input corpus, built under one temporary folder around a tiny trained run."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.security.hostile import (
    Case,
    alias_bomb,
    make_fifo,
    package_with,
    write_payload_pickle,
    write_zip,
    zip_bomb,
)

STAGE2 = [
    "encoder.embed_dim=16", "encoder.num_heads=2", "features.audio=[mfcc, egemaps]", "windows.length=32",
    "windows.stride=24", "model.tcn_channels=16", "model.dim_feedforward=32", "model.head_hidden=16",
    "stage2.epochs=1", "stage2.micro_batch=4", "runtime.progress=false",
    # The demo's stage 1 and trainer (the cases read `visual` features and DeepSpeed checkpoints; the quick config
    # reads `visual_mae` and trains with plain torch).
    "features.visual=visual", "stage1.finetune.epochs=2", "stage1.reserve=0.35", "runtime.engine=deepspeed",
]  # fmt: skip
"""A stage-2 run small enough to train in seconds on the synthetic corpus (16-d visual features)."""


@dataclass(frozen=True)
class World:
    """What the cases start from: a dataset, its cache, a trained run, its submission and package.

    Args:
        tmp: the folder everything lives in.
        data: the dataset root.
        cache: the feature cache root.
        run: a finished stage-2 run folder (one epoch, one checkpoint).
        sample: the organisers' sample file.
        labels: the test-set annotation folder.
        submission: a valid prediction file.
        package: a valid package of it (`harness submit`).
    """

    tmp: Path
    data: Path
    cache: Path
    run: Path
    sample: Path
    labels: Path
    submission: Path
    package: Path


def make_world(tmp: Path) -> World:
    """Build the corpus, train the tiny run, predict and package it (about 10 s)."""
    from harness.config import load_config
    from harness.stages.predict import predict_videos
    from harness.stages.stage2 import train_stage2
    from submissions.formats import write_submission
    from submissions.package import package_submission
    from tests.harness._corpus import make_corpus

    layout, cache = make_corpus(tmp / "corpus", train=4, val=2, test=2)
    run = tmp / "run"
    train_stage2(load_config("quick", STAGE2), layout, cache, 0, run)
    preds = predict_videos(run, cache, [e.name for e in layout.test])
    sub = write_submission(tmp / "submission.csv", preds, layout.sample_file)
    pkg = package_submission(sub, layout.sample_file, tmp / "submission.zip")
    return World(tmp, layout.root, cache.root, run, layout.sample_file,
                 layout.root / "organiser/VA_Estimation_Challenge/Test_Set", sub, pkg.path)  # fmt: skip


def _copy_run(world: World, name: str) -> Path:
    dst = world.tmp / name
    shutil.copytree(world.run, dst, symlinks=True)
    return dst


def _unchanged(path: Path, text: str) -> Callable[[], None]:
    def check() -> None:
        assert path.read_text() == text, f"{path} was changed"

    return check


def _absent(path: Path) -> Callable[[], None]:
    def check() -> None:
        assert not path.exists(), f"{path} exists: the pickle payload ran"

    return check


def build_cases(world: World) -> list[Case]:
    """Every hostile case, its files written under `world.tmp / "cases"`."""
    t = world.tmp / "cases"
    t.mkdir(exist_ok=True)
    cases: list[Case] = []
    sample, labels = str(world.sample), str(world.labels)
    nodata = str(t / "no-data")

    def train_cfg(name: str, config: str, *sets: str, expect: str = "") -> None:
        argv = ["train", "--config", config, "--data", nodata, "--out", str(t / f"out-{name}")]
        cases.append(Case(name, [*argv, *(a for s in sets for a in ("--set", s))], expect=expect))

    # -- configs -----------------------------------------------------------------------------------------------
    (t / "bomb.yaml").write_text(alias_bomb())
    train_cfg("yaml_alias_bomb", str(t / "bomb.yaml"), expect="YAML bomb")
    (t / "bomb_base.yaml").write_text(f"base: {t / 'bomb.yaml'}\nseed: 1\n")
    train_cfg("yaml_alias_bomb_as_base", str(t / "bomb_base.yaml"), expect="YAML bomb")
    (t / "deep.yaml").write_text("a: " + "[" * 10_000 + "]" * 10_000 + "\n")
    train_cfg("yaml_10000_deep", str(t / "deep.yaml"), expect="nesting deeper")
    (t / "deepmap.yaml").write_text("".join("  " * i + f"k{i}:\n" for i in range(500)))
    train_cfg("yaml_500_deep_mappings", str(t / "deepmap.yaml"), expect="nesting deeper")
    (t / "recursive.yaml").write_text("a: &a [*a]\n")
    train_cfg("yaml_recursive_alias", str(t / "recursive.yaml"), expect="contains it")
    (t / "huge.yaml").write_text("seed: 0\n" + "# padding\n" * 300_000)
    train_cfg("config_over_size_limit", str(t / "huge.yaml"), expect="more than")
    (t / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    train_cfg("config_not_utf8", str(t / "latin1.yaml"), expect="not UTF-8")
    (t / "nul.yaml").write_bytes(b"seed: 0\n\x00\x00\n")
    train_cfg("config_nul_bytes", str(t / "nul.yaml"), expect="not valid YAML")
    (t / "dir.yaml").mkdir()
    train_cfg("config_is_a_folder", str(t / "dir.yaml"), expect="a folder")
    make_fifo(t / "fifo.yaml")
    train_cfg("config_is_a_fifo", str(t / "fifo.yaml"), expect="FIFO")
    train_cfg("set_weight_decay_inf", "quick", "stage2.weight_decay=.inf", expect="not a finite number")
    train_cfg("set_weight_decay_1e999", "quick", "stage2.weight_decay=1e999", expect="not a finite number")
    train_cfg("set_lr_nan", "quick", "stage2.schedule.lr=.nan", expect="not a finite number")
    train_cfg("set_seed_huge", "quick", "seed=99999999999999999999999999", expect="out of range")
    train_cfg("set_seed_negative", "quick", "seed=-1", expect="out of range")
    train_cfg("set_negative_batch", "quick", "stage2.micro_batch=-4", expect="out of range")
    train_cfg("set_int_of_5000_digits", "quick", "stage2.epochs=" + "9" * 5000, expect="cannot be read")

    # -- prediction, sample and annotation files ---------------------------------------------------------------
    def validate(name: str, pred: Path | str, expect: str, rcs: tuple[int, ...] = (2,), smp: str = sample) -> None:
        cases.append(Case(name, ["validate", str(pred), "--sample", smp], rcs=rcs, expect=expect))

    def score(name: str, pred: Path | str, expect: str, rcs: tuple[int, ...] = (2,), lab: str = labels) -> None:
        cases.append(Case(name, ["score", str(pred), "--labels", lab], rcs=rcs, expect=expect))

    fifo = make_fifo(t / "fifo.csv")
    validate("validate_fifo", fifo, "FIFO")
    score("score_fifo", fifo, "FIFO")
    nul = t / "nul_1g.csv"
    with open(nul, "wb") as fh:
        fh.truncate(1 << 30)  # sparse: 1 GB of NUL bytes that take no disk
    validate("validate_1gb_nul", nul, "more than")
    score("score_1gb_nul", nul, "more than")
    small_nul = t / "nul_small.csv"
    small_nul.write_bytes(b"image_location,valence,arousal\n" + b"\x00" * 5000)
    validate("validate_nul_bytes", small_nul, "NUL byte")
    score("score_nul_bytes", small_nul, "NUL byte")
    line = t / "line_10mb.csv"
    line.write_text("image_location,valence,arousal\n" + "a" * (10 << 20) + "\n")
    validate("validate_10mb_line", line, "more than")  # over the sample's frame-count bound
    cases.append(Case("validate_10mb_line_without_sample", ["validate", str(line)], rcs=(1,), expect="long_line"))
    score("score_10mb_line", line, "long_line")
    (t / "pred_dir").mkdir()
    validate("validate_folder_as_file", t / "pred_dir", "a folder")
    score("score_empty_folder", t / "pred_dir", "no <video>.txt")
    latin = t / "latin1.csv"
    latin.write_bytes(world.submission.read_bytes() + "te00/99999.jpg,0.1,caf\xe9\n".encode("latin-1"))
    validate("validate_not_utf8", latin, "not UTF-8")
    score("score_not_utf8", latin, "not UTF-8")
    rows = world.submission.read_text().splitlines()
    nan = t / "nan.csv"
    nan.write_text("\n".join([rows[0], rows[1].rsplit(",", 2)[0] + ",nan,inf", *rows[2:]]) + "\n")
    validate("validate_nan_inf_values", nan, "NaN or inf", rcs=(1,))
    score("score_nan_inf_values", nan, "NaN or inf")
    validate("validate_sample_is_fifo", world.submission, "FIFO", smp=str(make_fifo(t / "sample_fifo.txt")))
    validate("validate_sample_1gb_nul", world.submission, "more than", smp=str(nul))
    bad_labels = t / "labels_fifo"
    shutil.copytree(world.labels, bad_labels)
    victim = sorted(bad_labels.glob("*.txt"))[0]
    victim.unlink()
    make_fifo(victim)
    score("score_annotation_is_fifo", world.submission, "FIFO", lab=str(bad_labels))
    long_labels = t / "labels_long"
    shutil.copytree(world.labels, long_labels)
    victim = sorted(long_labels.glob("*.txt"))[0]
    victim.write_text("valence,arousal\n" + "1" * (10 << 20) + "\n")
    score("score_annotation_10mb_line", world.submission, "at most 4096", lab=str(long_labels))
    if os.geteuid() != 0:  # root reads a mode-000 file anyway
        unreadable = t / "unreadable.csv"
        shutil.copy(world.submission, unreadable)
        unreadable.chmod(0)
        validate("validate_unreadable_file", unreadable, "permission denied")

    # -- zips --------------------------------------------------------------------------------------------------
    cases.append(Case("score_package", ["score", str(world.package), "--labels", labels], rcs=(0,), expect="P_VA"))
    validate("validate_package", world.package, "valid package", rcs=(0,))
    cases.append(Case("doctor_package", ["doctor", str(world.package), "--sample", sample], rcs=(0,),
                      expect="no problems"))  # fmt: skip
    pred_bytes = world.submission.read_bytes()
    validate("zip_bomb_over_size", zip_bomb(t / "bomb_big.zip", "predictions.csv", 300 << 20), "inflates to")
    validate("zip_bomb_ratio", zip_bomb(t / "bomb_ratio.zip", "predictions.csv", 64 << 20), "zip bomb")
    score("score_zip_bomb", t / "bomb_big.zip", "inflates to")
    validate("zip_slip_dotdot", write_zip(t / "slip.zip", {"../evil.csv": b"x", "manifest.json": b"{}"}),
             "climbs out")  # fmt: skip
    validate("zip_slip_absolute", write_zip(t / "abs.zip", {"/tmp/evil.csv": b"x"}), "absolute path")
    validate("zip_symlink_member", write_zip(t / "link.zip", {"predictions.csv": b"/etc/passwd"},
                                             links=("predictions.csv",)), "symbolic link")  # fmt: skip
    validate("zip_too_many_members", write_zip(t / "many.zip", {f"f{i}.txt": b"x" for i in range(100)}),
             "members")  # fmt: skip
    validate("zip_duplicate_member", _dup_zip(t / "dup.zip", pred_bytes), "appears twice")
    validate("package_checksum_mismatch", package_with(t / "tampered.zip", pred_bytes, manifest={
        "format": "ABAW VA", "files": {"predictions.csv": "0" * 64}}), "checksum mismatch")  # fmt: skip
    validate("package_manifest_not_json", package_with(t / "badjson.zip", pred_bytes, manifest=b"{nope"),
             "not valid JSON")  # fmt: skip
    validate("package_unlisted_member", package_with(t / "extra.zip", pred_bytes, more={"run.sh": b"rm -rf ~"}),
             "not covered")  # fmt: skip
    validate("package_member_not_utf8", package_with(t / "latin.zip", latin.read_bytes()), "not UTF-8")
    (t / "notzip.zip").write_bytes(b"PK\x03\x04" + os.urandom(200))
    validate("zip_damaged", t / "notzip.zip", "zip")

    # -- outputs never destroy what the harness did not write --------------------------------------------------
    notes = t / "notes.txt"
    notes.write_text("my notes\n")
    cases.append(Case("submit_out_not_zip", ["submit", str(world.submission), "--sample", sample, "--out",
                                             str(notes)], expect="ends in .zip", check=_unchanged(notes, "my notes\n")))
    other = t / "other.zip"
    other.write_text("not a package\n")
    cases.append(Case("submit_out_foreign_zip", ["submit", str(world.submission), "--sample", sample, "--out",
                                                 str(other)], expect="--force",
                      check=_unchanged(other, "not a package\n")))  # fmt: skip
    link = t / "link_out.zip"
    link.symlink_to(notes)
    cases.append(Case("submit_out_symlink_to_a_file", ["submit", str(world.submission), "--sample", sample, "--out",
                                                       str(link)], expect="--force",
                      check=_unchanged(notes, "my notes\n")))  # fmt: skip
    again = t / "again.zip"
    shutil.copy(world.package, again)
    cases.append(Case("submit_out_replaces_its_own_package", ["submit", str(world.submission), "--sample", sample,
                                                              "--out", str(again)], rcs=(0,), expect="sha256"))
    user_csv = t / "user.csv"
    user_csv.write_text("my,own,table\n")
    cases.append(Case("predict_out_foreign_file", ["predict", str(world.run), "--data", str(world.data), "--cache",
                                                   str(world.cache), "--out", str(user_csv)], expect="--force",
                      check=_unchanged(user_csv, "my,own,table\n")))  # fmt: skip
    user_dir = t / "user_dir"
    user_dir.mkdir()
    (user_dir / "thesis.tex").write_text("chapter 1\n")
    cases.append(Case("predict_video_out_foreign_folder", ["predict", str(world.run), str(t / "talk.mp4"), "--out",
                                                           str(user_dir)], expect="--force",
                      check=_unchanged(user_dir / "thesis.tex", "chapter 1\n")))  # fmt: skip
    cases.append(Case("train_out_foreign_folder", ["train", "--config", "quick", "--data", nodata, "--out",
                                                   str(user_dir)], expect="--force",
                      check=_unchanged(user_dir / "thesis.tex", "chapter 1\n")))  # fmt: skip
    dir_link = t / "dir_link"
    dir_link.symlink_to(user_dir, target_is_directory=True)
    cases.append(Case("train_out_symlinked_foreign_folder", ["train", "--config", "quick", "--data", nodata, "--out",
                                                             str(dir_link)], expect="--force",
                      check=_unchanged(user_dir / "thesis.tex", "chapter 1\n")))  # fmt: skip
    cases.append(Case("train_out_is_a_file", ["train", "--config", "quick", "--data", nodata, "--out", str(notes)],
                      expect="not a folder", check=_unchanged(notes, "my notes\n")))  # fmt: skip

    # -- run folders -------------------------------------------------------------------------------------------
    evil = _copy_run(world, "evil_run")
    sentinel = world.tmp / "PAYLOAD_RAN"
    tag = (evil / "checkpoints" / "latest").read_text().strip()
    write_payload_pickle(evil / "checkpoints" / tag / "mp_rank_00_model_states.pt", sentinel)
    cases.append(Case("train_resume_pickle_payload", [
        "train", "--config", str(evil / "config.yaml"), "--data", str(world.data), "--cache", str(world.cache),
        "--out", str(evil), "--stage", "2", "--resume", "--force", "--no-progress",
    ], expect="posix.system", check=_absent(sentinel), timeout=180))  # fmt: skip
    cases.append(Case("predict_run_with_pickle_payload", [
        "predict", str(evil), "--data", str(world.data), "--cache", str(world.cache), "--out", str(t / "evil.csv"),
    ], rcs=(0,), check=_absent(sentinel), timeout=120))  # fmt: skip
    cases.append(Case("doctor_run_with_pickle_payload", ["doctor", str(evil), "--sample", sample], rcs=(0, 1),
                      check=_absent(sentinel)))  # fmt: skip
    cases.append(Case("submit_run_with_pickle_payload", ["submit", str(evil), "--sample", sample, "--out",
                                                         str(t / "evil.zip")], rcs=(0, 2), check=_absent(sentinel)))
    best = _copy_run(world, "pickled_weights")
    write_payload_pickle(best / "best.safetensors", sentinel)
    cases.append(Case("predict_best_weights_is_a_pickle", [
        "predict", str(best), "--data", str(world.data), "--cache", str(world.cache), "--out", str(t / "b.csv"),
    ], expect="safetensors", check=_absent(sentinel)))  # fmt: skip
    obj = _copy_run(world, "object_norm_stats")
    with open(obj / "norm_stats.npz", "wb") as fh:
        np.savez(fh, visual_mean=np.array([Payload_like()], dtype=object), visual_std=np.ones(2))
    cases.append(Case("predict_norm_stats_object_array", [
        "predict", str(obj), "--data", str(world.data), "--cache", str(world.cache), "--out", str(t / "o.csv"),
    ], expect="norm_stats.npz"))  # fmt: skip
    corrupt = t / "corrupt.safetensors"
    corrupt.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    (t / "talk.mp4").write_bytes(b"\x00" * 64)
    cases.append(Case("predict_encoder_corrupt_safetensors_header", [
        "predict", str(world.run), str(t / "talk.mp4"), "--out", str(t / "talk_out"), "--encoder", str(corrupt),
    ], expect="corrupt.safetensors"))  # fmt: skip
    bomb_run = _copy_run(world, "bomb_config_run")
    (bomb_run / "config.yaml").write_text(alias_bomb())
    cases.append(Case("predict_run_config_alias_bomb", [
        "predict", str(bomb_run), "--data", str(world.data), "--cache", str(world.cache), "--out", str(t / "c.csv"),
    ], expect="YAML bomb"))  # fmt: skip
    summ = _copy_run(world, "bad_summary_run")
    (summ / "predictions").mkdir(exist_ok=True)
    shutil.copy(world.submission, summ / "predictions" / "submission.csv")
    (summ / "summary.json").write_text("{not json")
    cases.append(Case("submit_run_summary_not_json", ["submit", str(summ), "--sample", sample, "--out",
                                                      str(t / "s.zip")], expect="summary.json"))  # fmt: skip
    (summ / "metrics.jsonl").unlink(missing_ok=True)
    make_fifo(summ / "metrics.jsonl")
    cases.append(Case("doctor_run_metrics_is_fifo", ["doctor", str(summ)], rcs=(0, 1), timeout=30))
    return cases


class Payload_like:  # noqa: N801 - stands for any object numpy would have to pickle
    """An object that forces numpy to pickle the array holding it."""


def _dup_zip(path: Path, data: bytes) -> Path:
    import warnings
    import zipfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name: that is the point
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("predictions.csv", data)
            zf.writestr("predictions.csv", data)
            zf.writestr("manifest.json", json.dumps({"files": {}}))
    return path


def main() -> int:
    """Run the whole corpus and print one line per case (name, exit code, clean, peak RSS, seconds) and the totals."""
    import argparse
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    from tests.security.hostile import judge, run_case

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="cases run at once (default 2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        cases = build_cases(make_world(Path(tmp)))
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            outcomes = list(pool.map(lambda c: run_case(c.argv, timeout=c.timeout), cases))
        clean = 0
        for case, out in zip(cases, outcomes, strict=True):
            faults = judge(case, out)
            clean += not faults
            print(f"{case.name:45s} rc {out.rc:3d}  {'clean' if not faults else 'FAULT'}  {out.rss_mb:7.0f} MiB "
                  f"{out.seconds:6.1f} s  {'; '.join(faults)}")
        worst = max(outcomes, key=lambda o: o.rss_mb)
        print(f"{len(cases)} cases, {clean} clean; peak RSS {worst.rss_mb:.0f} MiB; "
              f"longest {max(o.seconds for o in outcomes):.1f} s")
        return 0 if clean == len(cases) else 1


if __name__ == "__main__":
    raise SystemExit(main())
