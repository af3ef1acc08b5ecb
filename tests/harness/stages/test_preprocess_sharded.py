"""Sharded preprocessing: a torchrun world of 2 (gloo, CPU) writes the crops, audio and visual features of a
one-process run, byte for byte and array for array; a rank killed mid-run loses only its unfinished video, and
the rerun ends with the one-process result. Also `--shard i/n` (job arrays) and the shard arithmetic.

Videos: the two GRID clips shipped with the package (real faces and speech) and two shorter clips cut from them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.locking import LOCKS_DIR, lock_file_name
from harness.folders.cache import SHARD_SUMMARIES, SUMMARY
from harness.runtime.childenv import child_env
from harness.runtime.distributed import free_port
from harness.runtime.sharding import Shard, ShardError, balance, parse_shard, shard_items
from harness.stages.preprocess import discover_jobs, job_frames, merge_shard_summaries
from tests._video import FPS, GRID, grid_frames, write_video
from tests._weights import require_scrfd
from tests.harness._preprocess import assert_same_outputs, finished, snapshot

ROOT = Path(__file__).resolve().parents[3]
FEATURES = ["mfcc", "egemaps", "audio_mask", "visual", "visual_mask"]


# -- the shard arithmetic ---------------------------------------------------------------------------------------
@given(st.lists(st.integers(0, 10_000), max_size=40), st.integers(1, 9))
def test_balance_gives_every_item_one_shard_and_evens_the_load(sizes: list[int], count: int) -> None:
    owner = balance(sizes, count)
    assert len(owner) == len(sizes) and all(0 <= o < count for o in owner)
    load = [sum(s for s, o in zip(sizes, owner, strict=True) if o == k) for k in range(count)]
    assert max(load) - min(load) <= max(sizes, default=0)  # greedy largest-first bound
    assert balance(sizes, count) == owner  # the same in every process
    parts = [shard_items(list(range(len(sizes))), sizes, Shard(k, count)) for k in range(count)]
    assert sorted(x for p in parts for x in p) == list(range(len(sizes)))  # a partition, each in input order
    assert all(p == sorted(p) for p in parts)


def test_parse_shard_and_its_errors() -> None:
    assert parse_shard(" 3/8 ") == Shard(3, 8) and str(Shard(3, 8)) == "3/8"
    assert Shard(3, 8).label == "shard-0003-of-0008"
    for bad in ("8/8", "1", "-1/2", "a/b", "0/0"):
        with pytest.raises(ShardError, match="shard"):
            parse_shard(bad)


def test_merge_keeps_the_dataset_order_and_says_when_complete() -> None:
    one = {"shard": 1, "input": "in", "config": {}, "videos": [{"video": "b", "error": None}]}
    zero = {"shard": 0, "input": "in", "config": {}, "videos": [{"video": "c", "error": "bad"}, {"video": "a"}]}
    partial = merge_shard_summaries([one], 2, ["a", "b", "c"])
    assert partial["shards"] == {"count": 2, "done": [1], "complete": False}
    merged = merge_shard_summaries([one, zero], 2, ["a", "b", "c"])
    assert [v["video"] for v in merged["videos"]] == ["a", "b", "c"] and merged["failed"] == ["c"]
    assert merged["shards"]["complete"]


# -- real runs ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_scrfd()
    folder = tmp_path_factory.mktemp("videos")
    for clip in ("bbaf2n.mpg", "lbax4n.mpg"):
        shutil.copy(GRID / clip, folder / clip)
    shutil.copy(GRID / "NOTICE.md", folder / "NOTICE.md")  # GRID is CC BY 4.0: its notice travels with the copies
    write_video(folder / "short_a.mp4", grid_frames(30, start=10), audio_s=30 / FPS)
    write_video(folder / "short_b.mp4", grid_frames(44, start=20, clip="lbax4n.mpg"), audio_s=44 / FPS)
    return folder


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ViT of the demo config with random weights, saved as stage 1 saves its encoder."""
    import torch

    from harness.config import load_config
    from harness.train.loop import save_weights
    from models.registry import build_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("enc") / "best.safetensors"
    save_weights(path, build_model(load_config("demo").vit_config()).state_dict())
    return path


def _args(src: Path, out: Path, encoder: Path) -> list[str]:
    return [str(src), "--out", str(out), "--stride", "2", "--input-size", "160", "--encoder", str(encoder),
            "--encoder-config", "demo"]  # fmt: skip



def _torchrun(args: list[str], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "harness.cli", "preprocess", *args]  # fmt: skip
    # One thread per rank: two ranks on two cores, and the reference below runs with the same setting.
    env = child_env({"OMP_NUM_THREADS": "1"})
    with open(log, "wb") as fh:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def _one_process(args: list[str], log: Path) -> None:
    cmd = [sys.executable, "-m", "harness.cli", "preprocess", *args]
    with open(log, "wb") as fh:
        proc = subprocess.run(cmd, cwd=ROOT, env=child_env({"OMP_NUM_THREADS": "1"}), stdout=fh,
                              stderr=subprocess.STDOUT, timeout=600, check=False)  # fmt: skip
    assert proc.returncode == 0, log.read_text()[-3000:]


@pytest.fixture(scope="module")
def reference(src: Path, encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "out"
    _one_process(_args(src, out, encoder), out.parent / "log")
    return out


def _videos(src: Path) -> list[str]:
    return [j.name for j in discover_jobs(src)[0]]


def test_world_of_two_equals_one_process(src: Path, encoder: Path, reference: Path, tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "log"
    proc = _torchrun(_args(src, out, encoder), log)
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    videos = _videos(src)
    assert_same_outputs(out, reference, videos, FEATURES)
    # each rank locked (and so wrote) only its own videos: the lock files name two different pids
    jobs = discover_jobs(src)[0]
    frames = [job_frames(j) for j in jobs]
    mine = [{j.name for j in shard_items(jobs, frames, Shard(r, 2))} for r in range(2)]
    assert all(mine) and not mine[0] & mine[1]
    holders = [{(out / "features" / LOCKS_DIR / lock_file_name(v)).read_text() for v in m} for m in mine]
    assert all(len(h) == 1 for h in holders) and holders[0] != holders[1]
    summary = json.loads((out / SUMMARY).read_text())
    assert [v["video"] for v in summary["videos"]] == videos and summary["failed"] == []
    assert summary["shards"] == {"count": 2, "done": [0, 1], "complete": True}
    text = log.read_text()
    assert f"Preprocessed {len(videos)} video(s)" in text  # rank 0 reports every rank's videos


def test_killed_rank_loses_only_its_unfinished_video(src: Path, encoder: Path, reference: Path,
                                                     tmp_path: Path) -> None:  # fmt: skip
    out, log = tmp_path / "out", tmp_path / "log"
    jobs = discover_jobs(src)[0]
    rank1 = [j.name for j in shard_items(jobs, [job_frames(j) for j in jobs], Shard(1, 2))]
    proc = _torchrun(_args(src, out, encoder), log)
    deadline = time.monotonic() + 300
    # Kill rank 1 once its first video's audio is done and while its second is still to do.
    while rank1[0] not in finished(out):
        assert proc.poll() is None, f"the run ended before the kill:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "rank 1 never finished a video"
        time.sleep(0.01)
    pid = int((out / "features" / LOCKS_DIR / lock_file_name(rank1[0])).read_text())
    os.kill(pid, signal.SIGKILL)
    code = proc.wait(timeout=120)  # torchrun ends the job when one of its ranks dies
    assert code != 0
    done = finished(out)
    assert rank1[0] in done and rank1[1] not in done, done
    before = snapshot(out, done)
    again = _torchrun(_args(src, out, encoder), tmp_path / "log2")
    assert again.wait(timeout=600) == 0, (tmp_path / "log2").read_text()[-3000:]
    # finished videos were not redone: not one file of theirs rewritten (their visual features, written after the
    # audio, may be new if the kill came between the two)
    after = snapshot(out, done)
    kept = {k: v for k, v in before.items() if not k.endswith(("visual.npy", "visual_mask.npy", "manifest.json"))}
    assert {k: after[k] for k in kept} == kept
    assert_same_outputs(out, reference, _videos(src), FEATURES)


def test_job_array_shards_merge_into_one_summary(src: Path, encoder: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _one_process([*_args(src, out, encoder), "--shard", "1/2"], tmp_path / "log1")
    partial = json.loads((out / SUMMARY).read_text())
    assert partial["shards"] == {"count": 2, "done": [1], "complete": False}
    _one_process([*_args(src, out, encoder), "--shard", "0/2"], tmp_path / "log0")
    merged = json.loads((out / SUMMARY).read_text())
    assert merged["shards"]["complete"] and [v["video"] for v in merged["videos"]] == _videos(src)
    assert sorted(p.name for p in (out / SHARD_SUMMARIES).iterdir()) == ["shard-0000-of-0002.json",
                                                                       "shard-0001-of-0002.json"]  # fmt: skip
    assert_same_outputs(out, reference, _videos(src), FEATURES)
