"""Ownership, not names (issue 25, item 1): each case runs `python -m harness.cli ...` as a real process against a
folder the harness did not write, and checks that nothing in it is lost, within 30 s and 1 GB."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.locking import acquire_lock, release_lock
from core.ownership import OWNERSHIP_FILE, OwnershipError, check_plain_name, claim_folder, plan_claim
from tests.security.hostile import make_fifo, run_case

MAX_SECONDS = 30.0
MAX_RSS_MB = 1024


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _bounded(out) -> None:
    assert out.seconds < MAX_SECONDS and out.rss_mb < MAX_RSS_MB, (out.seconds, out.rss_mb)
    assert "Traceback" not in out.stderr, out.stderr[-2000:]


def _project(tmp_path: Path) -> Path:
    proj = tmp_path / "project"
    (proj / "predictions").mkdir(parents=True)
    (proj / "config.yaml").write_text("mine: true\n")
    (proj / "predictions" / "keep.csv").write_text("a,b\n1,2\n")
    return proj


def test_train_refuses_a_project_folder_that_looks_like_a_run(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    before = _snapshot(proj)
    out = run_case(["train", "--config", "quick", "--data", str(tmp_path / "nodata"), "--out", str(proj)])
    _bounded(out)
    assert out.rc == 2 and f"{proj}: error: not empty and holds no record" in out.stderr, out.stderr[-2000:]
    assert _snapshot(proj) == before and not (proj / OWNERSHIP_FILE).exists()


def test_train_force_writes_beside_user_files_and_names_them(tmp_path: Path) -> None:
    proj = tmp_path / "project"
    proj.mkdir()
    (proj / "notes.txt").write_text("my notes\n")
    out = run_case(["train", "--config", "quick", "--data", str(tmp_path / "nodata"), "--out", str(proj), "--force"])
    _bounded(out)
    assert "left untouched (not written by the harness): 'notes.txt'" in out.stderr, out.stderr[-2000:]
    assert (proj / "notes.txt").read_text() == "my notes\n"
    # --force never replaces a user's file that the run layout would write.
    proj2 = _project(tmp_path / "b")
    before = _snapshot(proj2)
    out = run_case(["train", "--config", "quick", "--data", str(tmp_path / "nodata"), "--out", str(proj2), "--force"])
    _bounded(out)
    assert out.rc == 2 and "'config.yaml', 'predictions'" in out.stderr and "did not write itself" in out.stderr
    assert _snapshot(proj2) == before


def test_corpus_make_keeps_a_folder_with_a_bare_manifest(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "videos").mkdir(parents=True)
    (root / "videos" / "holiday.mp4").write_bytes(b"not really a video")
    (root / "corpus_manifest.json").write_text("{}")
    before = _snapshot(root)
    out = run_case(["corpus", "make", "--out", str(root), "--size", "small"])
    _bounded(out)
    assert out.rc != 0 and f"{root}: error: not empty and holds no record" in out.stderr, out.stderr[-2000:]
    assert _snapshot(root) == before


def test_faces_refuses_a_name_that_is_not_plain(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        (photos / f"{i}.jpg").write_bytes(b"\xff\xd8 a photo")
    before = _snapshot(photos)
    for name in ("..", "../x", "a\nb", "x" * 300):
        out = run_case(["faces", str(tmp_path / "clip.mp4"), "--name", name, "--out", str(photos)])
        _bounded(out)
        assert out.rc == 2 and "is not a plain file name" in out.stderr, (name, out.stderr[-2000:])
    assert _snapshot(photos) == before


def test_a_lock_file_symlink_leaves_its_target_intact(tmp_path: Path) -> None:
    target = tmp_path / "thesis.txt"
    target.write_text("four years of work\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.lock").symlink_to(target)
    with pytest.raises(Exception, match="symbolic link"):
        acquire_lock(tmp_path / "run" / "run.lock")
    # A regular file of other content under a lock's name is refused too, not truncated.
    (tmp_path / "other.lock").write_text("a user's file\n")
    with pytest.raises(Exception, match="not a lock file the harness wrote"):
        acquire_lock(tmp_path / "other.lock")
    assert target.read_text() == "four years of work\n"
    assert (tmp_path / "other.lock").read_text() == "a user's file\n"
    # An old lock holding a longer pid is overwritten at its start, never truncated to a shorter length.
    (tmp_path / "ok.lock").write_text("1234567")
    fh = acquire_lock(tmp_path / "ok.lock")
    assert (tmp_path / "ok.lock").read_text().strip() == str(os.getpid())
    release_lock(fh)


def test_predict_out_fifo_is_refused_without_a_hang(tmp_path: Path) -> None:
    fifo = make_fifo(tmp_path / "sub.csv")
    for extra in ([], ["--force"]):
        out = run_case(["predict", str(tmp_path / "run"), "--data", str(tmp_path), "--out", str(fifo), *extra],
                       timeout=60)  # fmt: skip
        _bounded(out)
        assert out.rc == 2 and "not a regular file" in out.stderr, out.stderr[-2000:]


def test_clean_leaves_checkpoints_the_harness_did_not_record(tmp_path: Path) -> None:
    run = tmp_path / "exp" / "mine"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "weights.bin").write_bytes(b"x" * 100)
    (run / "metrics.jsonl").write_text('{"event": "final"}\n')
    out = run_case(["clean", str(tmp_path / "exp")])
    _bounded(out)
    assert out.rc == 0 and (run / "checkpoints" / "weights.bin").is_file(), out.stdout[-2000:]
    assert "not on the harness's record" in out.stdout


def test_a_killed_submit_temp_file_is_removed_by_a_rerun_and_others_are_kept(tmp_path: Path) -> None:
    from core.atomic import remove_temps_of

    ours = tmp_path / ".team.zip.a1b2_c3d.tmp"
    ours.write_bytes(b"half a zip")
    theirs = [tmp_path / ".team.zip.notes.tmp", tmp_path / ".team.zip.abcdefgh.tmp.bak", tmp_path / "team.zip.x.tmp"]
    for p in theirs:
        p.write_text("user")
    out = run_case(["submit", str(tmp_path / "pred.csv"), "--sample", str(tmp_path / "s.txt"),
                    "--out", str(tmp_path / "team.zip")])  # fmt: skip
    _bounded(out)
    assert not ours.exists() and all(p.exists() for p in theirs)
    assert remove_temps_of(tmp_path / "team.zip") == 0


def test_latest_outside_the_checkpoints_folder_is_refused(tmp_path: Path) -> None:
    from harness.train.loop import _resume_tag

    ck = tmp_path / "checkpoints"
    (ck / "epoch3").mkdir(parents=True)
    for bad in ("../../../../etc", "/etc", "a/b"):
        (ck / "latest").write_text(bad)
        with pytest.raises(Exception, match="names a checkpoint outside"):
            _resume_tag(ck)
    (ck / "latest").write_bytes(b"\xff\xfe global")
    with pytest.raises(Exception, match="not UTF-8"):
        _resume_tag(ck)
    (ck / "latest").unlink()
    make_fifo(ck / "latest")
    with pytest.raises(Exception, match="not a regular file"):
        _resume_tag(ck)
    (ck / "latest").unlink()
    (ck / "latest").write_text("epoch3\n")
    assert _resume_tag(ck) == "epoch3"


def test_claim_rules(tmp_path: Path) -> None:
    # Pure: a foreign non-empty folder is refused, a recorded one is reused, a name collision is blocked.
    assert plan_claim(["a"], None, ["b"], force=False).refused
    plan = plan_claim(["a", "b"], None, ["b"], force=True)
    assert plan.foreign == ("a", "b") and plan.blocked == ("b",)
    assert not plan_claim([], None, ["b"], force=False).refused
    # I/O: a claimed folder is reused by a second claim; entries on the record are removed, others never.
    claim = claim_folder(tmp_path / "f", ["x", "y"], what="test folder")
    (tmp_path / "f" / "x").write_text("ours")
    (tmp_path / "f" / "user.txt").write_text("theirs")
    (tmp_path / "f" / f".{OWNERSHIP_FILE}.k1ll3d_0.tmp").write_text('{"half a rec')  # a killed record write
    again = claim_folder(tmp_path / "f", ["x", "y"], what="test folder")
    assert not (tmp_path / "f" / f".{OWNERSHIP_FILE}.k1ll3d_0.tmp").exists()
    assert again.remove("x", "user.txt") == ["user.txt"]
    assert not (tmp_path / "f" / "x").exists() and (tmp_path / "f" / "user.txt").exists()
    assert claim.owns("y") and not again.owns("user.txt")
    for bad in ("", ".", "..", "a/b", "a\x00b", "a\nb", "é" * 200):
        with pytest.raises(OwnershipError):
            check_plain_name(bad, "--name")
    assert check_plain_name("clip-01_a.b", "--name") == "clip-01_a.b"
