"""Feature cache: roundtrip, invalidation, damage detection, resumption, locking, config hashes."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core.hashing import stable_hash
from core.locking import lock_file_name
from preprocessing.cache import CacheError, CacheLockedError, FeatureCache


@dataclass(frozen=True)
class _Cfg:
    hop_s: float = 0.01
    sets: tuple[str, ...] = ("mfcc39", "eGeMAPSv01a")


def _feats(n: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "visual": rng.standard_normal((n, 16)).astype(np.float32),
        "visual_mask": rng.random(n) > 0.2,
        "mfcc": rng.standard_normal((n, 39)).astype(np.float32),
    }


def test_roundtrip_and_manifest(tmp_path: Path) -> None:
    feats = _feats()
    h = stable_hash({"model": "vit_tiny"})
    with FeatureCache(tmp_path) as cache:
        for name, arr in feats.items():
            cache.save("vid_left", name, arr, h, {"n_frames": 12, "fps": 30.0, "version": "1", "extractor": "x"})
    cache = FeatureCache(tmp_path)
    assert cache.videos() == ["vid_left"]
    got = cache.load("vid_left", ["visual", "visual_mask", "mfcc"])
    assert feats, "the loop below checks nothing"
    for name, arr in feats.items():
        np.testing.assert_array_equal(got[name], arr)
        assert got[name].dtype == arr.dtype
    mm = cache.load("vid_left", ["mfcc"], mmap=True)["mfcc"]
    assert isinstance(mm, np.memmap) and not mm.flags.writeable
    np.testing.assert_array_equal(mm, feats["mfcc"])
    manifest = json.loads((tmp_path / "vid_left" / "manifest.json").read_text())
    assert manifest["n_frames"] == 12 and manifest["fps"] == 30.0
    rec = manifest["features"]["visual"]
    assert rec == {"file": "visual.npy", "shape": [12, 16], "dtype": "<f4", "config_hash": h, "version": "1",
                   "meta": {"extractor": "x"}}
    assert cache.has("vid_left", "visual", h)
    assert not list((tmp_path / "vid_left").glob("*.tmp"))  # no temporary file left behind


def test_hash_change_invalidates(tmp_path: Path) -> None:
    with FeatureCache(tmp_path) as cache:
        cache.save("v", "mfcc", _feats()["mfcc"], stable_hash(_Cfg()), {"n_frames": 12})
        assert cache.has("v", "mfcc", stable_hash(_Cfg()))
        assert not cache.has("v", "mfcc", stable_hash(_Cfg(hop_s=0.02)))
        assert not cache.has("v", "egemaps", stable_hash(_Cfg()))
        assert not cache.has("other", "mfcc", stable_hash(_Cfg()))
        with pytest.raises(CacheError, match="computed with another config"):
            cache.load("v", ["mfcc"], config_hashes={"mfcc": stable_hash(_Cfg(hop_s=0.02))})


def test_truncated_npy_is_invalid(tmp_path: Path) -> None:
    h = stable_hash({})
    with FeatureCache(tmp_path) as cache:
        path = cache.save("v", "visual", _feats()["visual"], h)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 10])
    cache = FeatureCache(tmp_path)
    assert not cache.has("v", "visual", h)
    with pytest.raises(CacheError, match=r"truncated or damaged.*cached: visual"):
        cache.load("v", ["visual"])
    path.write_bytes(data[:20])  # header cut off
    assert not cache.has("v", "visual", h)
    path.unlink()
    assert not cache.has("v", "visual", h)


def test_file_that_disagrees_with_manifest_is_invalid(tmp_path: Path) -> None:
    h = stable_hash({})
    with FeatureCache(tmp_path) as cache:
        path = cache.save("v", "visual", np.zeros((12, 16), np.float32), h)
    np.save(path, np.zeros((12, 8), np.float32))  # replaced behind the cache's back
    assert not FeatureCache(tmp_path).has("v", "visual", h)


def test_changed_frame_count_invalidates_old_features(tmp_path: Path) -> None:
    h = stable_hash({})
    with FeatureCache(tmp_path) as cache:
        cache.save("v", "mfcc", np.zeros((12, 39), np.float32), h, {"n_frames": 12})
        cache.save("v", "visual", np.zeros((13, 16), np.float32), h, {"n_frames": 13})
        assert cache.has("v", "visual", h) and not cache.has("v", "mfcc", h)


def test_damaged_manifest(tmp_path: Path) -> None:
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "manifest.json").write_text("{not json")
    cache = FeatureCache(tmp_path)
    assert not cache.has("v", "mfcc", "h")
    with pytest.raises(CacheError, match="damaged manifest"):
        cache.load("v", ["mfcc"])


def test_resumption_skips_done_work(tmp_path: Path) -> None:
    videos = [f"video{i}" for i in range(5)]
    h = stable_hash(_Cfg())
    computed: list[str] = []

    def run(fail_after: int | None = None) -> None:
        with FeatureCache(tmp_path) as cache:
            for k, v in enumerate(cache.todo(videos, "mfcc", h)):
                if fail_after is not None and k == fail_after:
                    raise KeyboardInterrupt  # the run is killed half-way
                computed.append(v)
                cache.save(v, "mfcc", np.full((4, 39), k, np.float32), h, {"n_frames": 4})

    with pytest.raises(KeyboardInterrupt):
        run(fail_after=2)
    assert computed == ["video0", "video1"]
    run()
    assert computed == videos  # the second run only did the three missing videos
    run()
    assert computed == videos  # and a third run does nothing
    assert FeatureCache(tmp_path).todo(videos, "mfcc", stable_hash(_Cfg(hop_s=0.02))) == videos


def test_video_lock_is_exclusive_per_video(tmp_path: Path) -> None:
    first = FeatureCache(tmp_path)
    first.save("v", "mfcc", np.zeros((2, 39), np.float32), "h")  # holds v's lock from now on
    second = FeatureCache(tmp_path)
    with pytest.raises(CacheLockedError, match=r"the features of 'v' are being written by another process"):
        second.save("v", "mfcc", np.zeros((2, 39), np.float32), "h")
    second.save("w", "mfcc", np.ones((3, 39), np.float32), "h")  # another video: side by side
    with pytest.raises(CacheLockedError):  # all or none: w stays held by `second`, v by `first`
        FeatureCache(tmp_path).lock_videos(["x", "v"])
    third = FeatureCache(tmp_path)
    third.lock_videos(["x"])  # x was released when the all-or-none call failed
    third.close()
    # another process is refused too, naming the video and the lock
    code = (
        "import sys; from preprocessing.cache import FeatureCache, CacheLockedError\n"
        "try:\n    FeatureCache(sys.argv[1]).lock_videos(['w'])\n"
        "except CacheLockedError as e:\n    print(e); sys.exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 3, proc.stderr
    assert "'w'" in proc.stdout and f".locks/{lock_file_name('w')}" in proc.stdout
    first.close()
    second.save("v", "mfcc", np.zeros((2, 39), np.float32), "h")  # free again
    second.close()
    assert FeatureCache(tmp_path).load("v", ["mfcc"])["mfcc"].shape == (2, 39)  # reading needs no lock
    assert FeatureCache(tmp_path).videos() == ["v", "w"]  # the lock folder is not a video


def test_audio_saved_under_both_person_names(tmp_path: Path) -> None:
    audio = np.arange(8 * 39, dtype=np.float32).reshape(8, 39)
    with FeatureCache(tmp_path) as cache:
        cache.save_many(["clip_left", "clip_right"], "mfcc", audio, "h", {"n_frames": 8})
    cache = FeatureCache(tmp_path)
    assert cache.videos() == ["clip_left", "clip_right"]
    np.testing.assert_array_equal(cache.load("clip_right", ["mfcc"])["mfcc"], audio)


def test_bad_names_and_missing_features(tmp_path: Path) -> None:
    with FeatureCache(tmp_path) as cache:
        for bad in ("../escape", "", ".hidden", "a/b"):
            with pytest.raises(CacheError, match="bad video name"):
                cache.save(bad, "mfcc", np.zeros(2), "h")
        with pytest.raises(CacheError, match="bad feature name"):
            cache.save("v", "mf cc", np.zeros(2), "h")
        with pytest.raises(CacheError, match="object arrays"):
            cache.save("v", "mfcc", np.array([object()]), "h")
        cache.save("v", "mfcc", np.zeros((2, 39), np.float32), "h")
        with pytest.raises(CacheError, match=r"'vggish' unusable: not in the manifest \(cached: mfcc\)"):
            cache.load("v", ["mfcc", "vggish"])
