"""Hostile inputs of issue 25's read-side classes, each a `harness ...` command line around the tiny trained world.

Classes: unbounded reads (JSON depth and integer digits, npz members that inflate, npy headers of 40 GB, huge or
NUL files, long lines, large valid files that must stream), files of the wrong JSON type, special files (FIFOs),
non-UTF-8 and UTF-16 text, the shared number grammar, config bounds and duplicate keys, media bounds, messages that
name the user's path (package members, escaped names), and members a package's checksums do not cover.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from tests.security.cases import World
from tests.security.hostile import Case, make_fifo, package_with, write_zip

DEEP = "[" * 200_000 + "]" * 200_000
"""JSON nested 200,000 deep (Python's parser dies of RecursionError near 1,000)."""

BIG_INT = "9" * 5000
"""An integer of 5,000 digits (Python refuses to convert more than 4,300)."""


def sparse(path: Path, size: int) -> Path:
    """A file of `size` NUL bytes that takes no disk (a hole)."""
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


def copy_run(world: World, name: str) -> Path:
    """A copy of the world's trained run (links kept as links)."""
    dst = world.tmp / "reads" / name
    shutil.copytree(world.run, dst, symlinks=True)
    return dst


def copy_cache(world: World, name: str) -> Path:
    """A copy of the world's feature cache."""
    dst = world.tmp / "reads" / name
    shutil.copytree(world.cache, dst, symlinks=True)
    return dst


def linked_dataset(world: World, name: str) -> Path:
    """A dataset root whose entries are symbolic links to the world's (so one file can be replaced cheaply)."""
    root = world.tmp / "reads" / name
    root.mkdir(parents=True)
    for entry in world.data.iterdir():
        (root / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    return root


def npz_bomb(path: Path, member: str, elements: int) -> Path:
    """An npz whose member `member` is a float64 .npy of `elements` zeros: its header is honest, its data inflates
    (2.8 MB of deflate for 2.8 GB)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf, \
            zf.open(member, "w", force_zip64=True) as fh:  # fmt: skip
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (elements,)})
        block = b"\0" * (1 << 20)
        for _ in range(elements * 8 // len(block)):
            fh.write(block)
    return path


def npz_header_claim(path: Path, member: str, shape: tuple[int, ...]) -> Path:
    """An npz whose member's .npy header claims `shape` and holds no data."""
    head = os.path.join(str(path.parent), f".{member}.hdr")
    with open(head, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(head, member)
    os.unlink(head)
    return path


def huge_png(path: Path, side: int = 16000) -> Path:
    """A valid `side` x `side` RGB PNG of zeros, compressed as it is written (never whole in memory)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * side)
    parts = [comp.compress(row) for _ in range(side)]
    idat = b"".join(parts) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def build_read_cases(world: World) -> list[Case]:
    """Every case of this module, its files written under `world.tmp / "reads"`."""
    t = world.tmp / "reads"
    t.mkdir(exist_ok=True)
    cases: list[Case] = []
    sample, labels, data, cache = str(world.sample), str(world.labels), str(world.data), str(world.cache)
    pred_text = world.submission.read_text()
    rows = pred_text.splitlines()

    def add(name: str, argv: list[str], expect: str = "", rcs: tuple[int, ...] = (2,), timeout: float = 60) -> None:
        cases.append(Case(name, argv, rcs=rcs, expect=expect, timeout=timeout))

    # -- JSON: depth, integer digits, type, in every kind of file the harness reads back -----------------------
    for kind, text, expect in (("deep", DEEP, "nests deeper than 64"), ("bigint", f'{{"a": {BIG_INT}}}', "digits")):
        pkg = package_with(t / f"manifest_{kind}.zip", world.submission.read_bytes(), manifest=text.encode())
        add(f"validate_package_manifest_{kind}", ["validate", str(pkg), "--sample", sample], expect)
        run = copy_run(world, f"summary_{kind}")
        (run / "summary.json").write_text(text)
        add(f"submit_summary_{kind}", ["submit", str(run), "--sample", sample, "--out", str(t / f"s_{kind}.zip")],
            expect)  # fmt: skip
        add(f"leaderboard_summary_{kind}", ["leaderboard", str(run)], expect)
        run = copy_run(world, f"metrics_{kind}")
        (run / "metrics.jsonl").write_text('{"epoch": 0, "p_va": 0.5}\n' + text + "\n")
        add(f"doctor_metrics_{kind}", ["doctor", str(run)], expect, rcs=(1,))
        add(f"report_metrics_{kind}", ["report", str(run), "--out", str(t / f"r_{kind}.html")], expect)
        exp = t / f"experiment_{kind}"
        exp.mkdir()
        (exp / "table_IV.json").write_text(text)
        add(f"report_table_{kind}", ["report", str(exp), "--out", str(t / f"rt_{kind}.html")], expect)
        scores = t / f"scores_{kind}" / "scores.json"
        scores.parent.mkdir()
        scores.write_text(text)
        add(f"leaderboard_scores_{kind}", ["leaderboard", str(scores)], expect)
    scores = t / "scores_str" / "scores.json"
    scores.parent.mkdir()
    scores.write_text(json.dumps({"demo/fold0/bdca": {"ccc_v": 0.4, "ccc_a": 0.5, "p_va": "0.45 (approx)"}}))
    add("leaderboard_p_va_is_text", ["leaderboard", str(scores)], "p_va is '0.45 (approx)', not a number")
    scores = t / "scores_list" / "scores.json"
    scores.parent.mkdir()
    scores.write_text("[1, 2]")
    add("leaderboard_scores_is_a_list", ["leaderboard", str(scores)], "holds a JSON array, expected a JSON object")
    scores = t / "scores_1g" / "scores.json"
    scores.parent.mkdir()
    sparse(scores, 1 << 30)
    add("leaderboard_scores_1gib", ["leaderboard", str(scores)], "more than")
    run = copy_run(world, "summary_list")
    (run / "summary.json").write_text("[1, 2]")
    add("submit_summary_is_a_list", ["submit", str(run), "--sample", sample, "--out", str(t / "sl.zip")],
        "holds a JSON array")  # fmt: skip

    # -- run folders: metrics FIFO, npz bombs and headers, type-confused arrays ------------------------------------
    run = copy_run(world, "metrics_fifo")
    (run / "metrics.jsonl").unlink()
    make_fifo(run / "metrics.jsonl")
    add("clean_dry_run_metrics_fifo", ["clean", str(run), "--dry-run"], rcs=(0,), timeout=30)
    add("report_metrics_fifo", ["report", str(run), "--out", str(t / "fifo.html")], rcs=(0, 2), timeout=30)
    out_fifo = make_fifo(t / "out_fifo.csv")
    add("predict_out_is_an_existing_fifo", ["predict", str(world.run), "--data", data, "--cache", cache, "--out",
                                            str(out_fifo)], "is not a regular file", timeout=30)  # fmt: skip
    run = copy_run(world, "metrics_type_confused")
    (run / "metrics.jsonl").write_text('{"epoch": "a", "p_va": [1]}\n{"epoch": 0, "p_va": "x"}\n'
                                       '{"epoch": 1, "p_va": 1e308, "loss": null}\n{"epoch": 2, "p_va": 0.5}\n')
    add("report_metrics_type_confused", ["report", str(run), "--out", str(t / "tc.html")], rcs=(0,))
    predict = ["predict", "--data", data, "--cache", cache]
    for name, make, expect in (
        ("norm_stats_member_inflates", lambda p: npz_bomb(p, "visual_mean.npy", 350_000_000), "inflates to"),
        ("norm_stats_header_1e12", lambda p: npz_header_claim(p, "visual_mean.npy", (10**12,)), "shape"),
        ("norm_stats_frames_is_a_list", lambda p: _stats_with(p, frames=np.array([3, 4])), "one integer"),
    ):  # fmt: skip
        run = copy_run(world, name)
        (run / "norm_stats.npz").unlink()
        make(run / "norm_stats.npz")
        add(f"predict_{name}", [*predict[:1], str(run), *predict[1:], "--out", str(t / f"{name}.csv")], expect,
            timeout=90)  # fmt: skip
    video = sorted(world.labels.glob("*.txt"))[0].stem  # a test video: predict reads its features
    for name, edit, expect in (
        ("cache_manifest_file_is_a_number", lambda m: m["features"]["visual"].update(file=5), "file is 5"),
        ("cache_manifest_n_frames_is_a_list", lambda m: m.update(n_frames=[3, 4]), "n_frames is [3, 4]"),
        ("cache_manifest_file_climbs_out", lambda m: m["features"]["visual"].update(file="../../x.npy"),
         "plain file name"),
        ("cache_manifest_deep", None, "nests deeper"),
    ):  # fmt: skip
        c = copy_cache(world, name)
        mpath = c / video / "manifest.json"
        if edit is None:
            mpath.write_text(DEEP)
        else:
            m = json.loads(mpath.read_text())
            edit(m)
            mpath.write_text(json.dumps(m))
        add(f"predict_{name}", ["predict", str(world.run), "--data", data, "--cache", str(c), "--out",
                                str(t / f"{name}.csv")], expect, timeout=90)  # fmt: skip
    c = copy_cache(world, "sparse_visual")
    m = json.loads((c / video / "manifest.json").read_text())
    rec = m["features"]["visual"]
    rows_40g = (40 << 30) // (4 * int(rec["shape"][1]))
    npy = c / video / rec["file"]
    with open(npy, "wb") as fh:  # a header that agrees with the manifest, then a hole of 40 GB
        np.lib.format.write_array_header_1_0(fh, {"descr": rec["dtype"], "fortran_order": False,
                                                  "shape": (rows_40g, int(rec["shape"][1]))})  # fmt: skip
        fh.truncate(fh.tell() + rows_40g * int(rec["shape"][1]) * 4)
    rec["shape"] = [rows_40g, int(rec["shape"][1])]
    m["n_frames"] = rows_40g
    (c / video / "manifest.json").write_text(json.dumps(m))
    add("predict_sparse_40gb_visual_npy", ["predict", str(world.run), "--data", data, "--cache", str(c), "--out",
                                           str(t / "sparse.csv")], "more than", timeout=90)  # fmt: skip

    for name, edit, expect in (
        ("run_json_is_a_list", lambda r: (r / "run.json").write_text("[1, 2]"), "holds a JSON array"),
        ("run_json_deep", lambda r: (r / "run.json").write_text(DEEP), "nests deeper"),
        ("latest_not_utf8", lambda r: (r / "checkpoints" / "latest").write_bytes(b"caf\xe9\n"), "not UTF-8"),
    ):  # fmt: skip
        run = copy_run(world, name)
        edit(run)
        add(f"train_resume_{name}", ["train", "--config", str(run / "config.yaml"), "--data", data, "--cache", cache,
                                     "--out", str(run), "--stage", "2", "--resume", "--force", "--no-progress"],
            expect, timeout=120)  # fmt: skip

    # -- validate and score stream their inputs; one number grammar; UTF-16 -----------------------------------
    empty = t / "empty_lines.csv"
    with open(empty, "wb") as fh:
        fh.write(b"image_location,valence,arousal\n" + b"\n" * (100 << 20))
    add("validate_100mib_empty_lines", ["validate", str(empty)], "columns", rcs=(1,))
    add("validate_100mib_empty_lines_with_sample", ["validate", str(empty), "--sample", sample], "more than")
    big = t / "valid_250mib.csv"
    with open(big, "w") as fh:
        fh.write("image_location,valence,arousal\n")
        block = "".join(f"v{{:05d}}/{i:05d}.jpg,0.123456,-0.654321\n" for i in range(1, 5001))
        v = 0
        while fh.tell() < (250 << 20):
            fh.write(block.replace("{:05d}", f"{v:05d}"))
            v += 1
    add("validate_250mib_valid_rows", ["validate", str(big)], "valid prediction file", rcs=(0,))
    add("score_250mib_valid_rows", ["score", str(big), "--labels", labels], "no predictions for labelled video")
    add("validate_250mib_sample", ["validate", str(world.submission), "--sample", str(sparse(t / "s250.txt",
                                                                                            250 << 20))],
        "more than")  # fmt: skip
    big_sample = t / "sample_100mib.txt"
    with open(big_sample, "w") as fh:
        fh.write("image_location,valence,arousal\n")
        v = 0
        while fh.tell() < (100 << 20):
            fh.write("".join(f"video{v:05d}/{i:05d}.jpg,0,0\n" for i in range(1, 5001)))
            v += 1
    add("validate_against_100mib_sample", ["validate", str(world.submission), "--sample", str(big_sample)],
        "unknown video", rcs=(1,))  # fmt: skip
    lab60 = t / "labels_60mib"
    shutil.copytree(world.labels, lab60)
    first = sorted(lab60.glob("*.txt"))[0]
    with open(first, "w") as fh:
        fh.write("valence,arousal\n" + "0.1,0.2\n" * ((60 << 20) // 8))
    add("score_60mib_annotation", ["score", str(world.submission), "--labels", str(lab60)], first.stem)
    rel = linked_dataset(world, "release_nul")
    release = rel / "VA_test_set_release.txt"
    release.unlink(missing_ok=True)
    sparse(release, 300 << 20)
    add("doctor_300mib_nul_release_list", ["doctor", str(rel)], "more than", rcs=(1, 2))
    for name, cell in (("arabic_indic", "٠.٥"), ("underscore", "1_0e-1"), ("line_separator", "0.1\u2028")):
        bad = t / f"pred_{name}.csv"
        bad.write_text("\n".join([rows[0], rows[1].rsplit(",", 2)[0] + f",{cell},0.1", *rows[2:]]) + "\n")
        add(f"validate_number_{name}", ["validate", str(bad), "--sample", sample], "non-numeric", rcs=(1,))
        add(f"score_number_{name}", ["score", str(bad), "--labels", labels], "non-numeric")
        lab = t / f"labels_{name}"
        shutil.copytree(world.labels, lab)
        ann = sorted(lab.glob("*.txt"))[0]
        lines = ann.read_text().splitlines()
        ann.write_text("\n".join([lines[0], f"{cell},0.1", *lines[2:]]) + "\n")
        add(f"score_label_number_{name}", ["score", str(world.submission), "--labels", str(lab)], "non-numeric")
    utf16 = t / "utf16.csv"
    utf16.write_bytes(pred_text.encode("utf-16"))
    add("validate_utf16", ["validate", str(utf16), "--sample", sample], "UTF-16")
    add("score_utf16", ["score", str(utf16), "--labels", labels], "UTF-16")
    add("score_resamples_1e9", ["score", str(world.submission), "--labels", labels, "--resamples", "1000000000"],
        "out of range")  # fmt: skip

    # -- packages: members the checksums do not cover; messages name PKG.zip!member -----------------------------
    pred = world.submission.read_bytes()
    manifest = {"format": "ABAW VA", "files": {"predictions.csv": hashlib.sha256(pred).hexdigest()}}
    extra_dir = t / "extra_dir.zip"
    write_zip(extra_dir, {"predictions.csv": pred, "manifest.json": json.dumps(manifest).encode(), "extra/": b""})
    add("validate_package_extra_directory", ["validate", str(extra_dir), "--sample", sample], "not covered")
    broken = pred_text.replace(rows[2], rows[2].rsplit(",", 2)[0] + ",high,0.1")
    bad_pkg = package_with(t / "team.zip", broken.encode())
    add("validate_package_names_member", ["validate", str(bad_pkg), "--sample", sample],
        f"{bad_pkg}!predictions.csv:3:", rcs=(1, 2))  # fmt: skip

    more_labels = t / "labels_more"
    shutil.copytree(world.labels, more_labels)
    shutil.copy(sorted(more_labels.glob("*.txt"))[0], more_labels / "zz_unpredicted.txt")
    add("score_package_names_member", ["score", str(world.package), "--labels", str(more_labels)],
        f"{world.package}!predictions.csv: error: no predictions for labelled video 'zz_unpredicted'")

    # -- config bounds and duplicate keys ------------------------------------------------------------------------
    nodata = str(t / "no-data")
    for key, value in (("runtime.threads", "100000"), ("runtime.num_workers", "100000"),
                       ("model.tcn_channels", "2000000000"), ("windows.length", str(2**62)),
                       ("stage2.micro_batch", "10000000"), ("stage2.epochs", "10000000")):  # fmt: skip
        add(f"train_set_{key.replace('.', '_')}_huge", ["train", "--config", "quick", "--data", nodata, "--out",
                                                       str(t / "o"), "--set", f"{key}={value}"], "out of range")
    (t / "dup.yaml").write_text("base: quick\nseed: 1\nruntime:\n  threads: 1\nseed: 2\n")
    add("train_config_duplicate_key", ["train", "--config", str(t / "dup.yaml"), "--data", nodata, "--out",
                                       str(t / "o")], "given twice (lines 2 and 5)")  # fmt: skip
    (t / "mixed.yaml").write_text("base: quick\n1: one\nfoo: two\n")
    add("train_config_unknown_keys_of_two_types", ["train", "--config", str(t / "mixed.yaml"), "--data", nodata,
                                                   "--out", str(t / "o")], "unknown key")  # fmt: skip

    # -- media bounds; names printed exactly -----------------------------------------------------------------------
    ds = linked_dataset(world, "media")
    shutil.rmtree(ds / "videos", ignore_errors=True)
    (ds / "videos").unlink(missing_ok=True)
    batch = ds / "videos" / "batch1"
    batch.mkdir(parents=True)
    test_video = sorted(world.labels.glob("*.txt"))[0].stem
    huge_png(batch / f"{test_video}.mp4")
    (batch / "bad\nname.mp4").write_bytes(b"\0" * 64)
    add("doctor_16000x16000_png_named_mp4", ["doctor", str(ds)], "16000 x 16000", rcs=(1,))
    cases.append(Case("doctor_prints_a_newline_name_escaped", ["doctor", str(ds)], rcs=(1,),
                      expect=f"{batch}/bad\\nname.mp4: error:"))  # fmt: skip
    fifo_name = t / "weird name\twith tab.csv"
    add("validate_tab_in_name_printed_exactly", ["validate", str(fifo_name)], f"{t}/weird name\\twith tab.csv")
    return cases


def _stats_with(path: Path, **override: np.ndarray) -> Path:
    arrays = {"visual_mean": np.zeros(16), "visual_std": np.ones(16), "audio_mean": np.zeros(62),
              "audio_std": np.ones(62), "frames": np.array(10), "face_frames": np.array(10), **override}  # fmt: skip
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def main() -> int:
    """Run every case and print one line per case (name, exit code, clean, peak RSS, seconds) and the totals: the
    figures SECURITY.md quotes (`python -m tests.security._reads`)."""
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    from tests.security.cases import make_world
    from tests.security.hostile import judge, run_case

    with tempfile.TemporaryDirectory(prefix="reads-") as tmp:
        cases = build_read_cases(make_world(Path(tmp)))
        with ThreadPoolExecutor(max_workers=2) as pool:
            outcomes = list(pool.map(lambda c: run_case(c.argv, timeout=c.timeout), cases))
        clean = 0
        for case, out in zip(cases, outcomes, strict=True):
            faults = judge(case, out)
            clean += not faults
            print(f"{case.name:45s} rc {out.rc:3d}  {'clean' if not faults else 'FAULT'}  {out.rss_mb:7.0f} MiB "
                  f"{out.seconds:6.1f} s  {'; '.join(faults)}")
        print(f"{len(cases)} cases, {clean} clean; peak RSS {max(o.rss_mb for o in outcomes):.0f} MiB; "
              f"longest {max(o.seconds for o in outcomes):.1f} s")
        return 0 if clean == len(cases) else 1


if __name__ == "__main__":
    raise SystemExit(main())
