"""Per-video feature cache: one `.npy` per feature plus a manifest, written atomically, valid only when complete.

Layout under a cache root:

    <root>/.locks/<hash>.lock             held (fcntl.flock) by the one process writing that video's features
    <root>/<video>/manifest.json          {"video", "n_frames", "fps", "features": {name: {...}}}
    <root>/<video>/<feature>.npy          visual (N, D) float32, visual_mask (N,) bool, mfcc (N, 39),
                                          egemaps (N, 23), vggish (N, 128), audio_mask (N,) bool, ...

Each feature's manifest record holds its file, shape, dtype, config hash, version and free-form meta. An array
is written to a temporary file and renamed into place; the manifest is rewritten (atomically) only after that, so
a killed process leaves either the old entry or the new one. `has` trusts an entry only when the file exists, its
`.npy` header shape and byte length match the manifest, and the config hash matches: a truncated file, a
changed config or a different frame count all mean "compute again", which is what makes runs resumable.

Two-person videos (`<video>_left`, `<video>_right`) share one raw video and so one audio track: audio features
are computed once per raw video and saved under each person's name, so every name's folder is complete on its
own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_open, atomic_write_text
from core.errors import HarnessError
from core.hashing import HashError, jsonable
from core.locking import FolderLock, video_lock

MANIFEST = "manifest.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_FEATURE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class CacheError(HarnessError):
    """A cache entry that is missing or damaged, or a bad video/feature name."""


class CacheLockedError(CacheError):
    """Another process holds the cache root's lock."""


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, byte length the file must have) from a `.npy` header, without reading the data.

    Args:
        path: the `.npy` file.
    """
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        offset = fh.tell()
    if dtype.hasobject:
        raise ValueError("object arrays are not cached")
    return tuple(shape), dtype, offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


class FeatureCache:
    """Read and write the feature cache under one root.

    Writing a video takes that video's lock, `<root>/.locks/<hash>.lock` (non-blocking; `CacheLockedError` when
    another process, or another FeatureCache object, holds it), at its first `save` (or `lock_videos`) and keeps
    it until `close()` or the end of a `with` block: processes writing different videos (the ranks of a sharded
    preprocess) share one cache, two writers of one video do not. Reading takes no lock.

    Args:
        root: the cache root folder (created on first write).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._locks: dict[str, FolderLock] = {}

    # -- locking -------------------------------------------------------------------------------------------------
    def lock_videos(self, videos: Iterable[str]) -> None:
        """Take the write locks of `videos` now, all or none (idempotent for those already held).

        Raises:
            CacheLockedError: another process writes one of them (the message names it and the holder).
        """
        taken: dict[str, FolderLock] = {}
        try:
            for video in videos:
                if video in self._locks or video in taken:
                    continue
                self.video_dir(video)  # the name is checked before it names a lock file

                def held(path: Path, holder: str, video: str = video) -> CacheLockedError:
                    return CacheLockedError(
                        f"{self.root}: the features of {video!r} are being written by another process (lock {path}, "
                        f"holder pid {holder}); wait for it to finish or use another cache root"
                    )

                taken[video] = video_lock(self.root, video, held).acquire()
        except Exception:  # held elsewhere, or a bad name: none of this call's locks stays taken
            for lock in taken.values():
                lock.release()
            raise
        self._locks.update(taken)

    def release(self, videos: Iterable[str]) -> None:
        """Release the write locks of `videos` (those this object holds): a run that writes many videos holds
        each one's lock only while it writes it, so its open files do not grow with the dataset."""
        for video in videos:
            lock = self._locks.pop(video, None)
            if lock is not None:
                lock.release()

    def close(self) -> None:
        """Release every video lock this object holds."""
        for lock in self._locks.values():
            lock.release()
        self._locks = {}

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    # -- paths and manifest -------------------------------------------------------------------------------------
    def video_dir(self, video: str) -> Path:
        """`<root>/<video>`; the name must be a plain file name."""
        if not _NAME.match(video) or video in {".", ".."}:
            raise CacheError(f"bad video name for the cache: {video!r} (letters, digits, _ . - only)")
        return self.root / video

    def manifest(self, video: str) -> dict[str, Any]:
        """The video's manifest, or an empty one when the video has none yet.

        Args:
            video: video name.
        """
        path = self.video_dir(video) / MANIFEST
        if not path.is_file():
            return {"video": video, "n_frames": None, "fps": None, "features": {}}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CacheError(f"{path}: damaged manifest ({exc}); delete the folder to recompute") from exc
        if not isinstance(data, dict) or not isinstance(data.get("features"), dict):
            raise CacheError(f"{path}: damaged manifest (no 'features' object); delete the folder to recompute")
        return data

    def videos(self) -> list[str]:
        """Names of the videos that have a manifest, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob(f"*/{MANIFEST}"))

    # -- write ---------------------------------------------------------------------------------------------------
    def save(
        self,
        video: str,
        name: str,
        array: np.ndarray,
        config_hash: str,
        meta: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write one feature of one video, then record it in the manifest.

        Args:
            video: video name.
            name: feature name (`visual`, `mfcc`, ...): the file is `<name>.npy`.
            array: the values; row k belongs to frame k + 1.
            config_hash: `config_hash(config)` of what produced it.
            meta: optional; `n_frames` and `fps` go to the manifest's top level (a changed `n_frames` makes
                features of the old length invalid), `version` is kept per feature, the rest as free-form meta.

        Returns:
            the `.npy` path.
        """
        if not _FEATURE.match(name):
            raise CacheError(f"bad feature name {name!r} (a letter, then letters, digits, _)")
        array = np.asarray(array)
        if array.dtype.hasobject:
            raise CacheError(f"{video}/{name}: object arrays cannot be cached")
        meta = dict(meta or {})
        try:
            meta = jsonable(meta)
        except HashError as exc:
            raise CacheError(f"{video}/{name}: meta {exc}") from None
        self.lock_videos([video])
        folder = self.video_dir(video)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.npy"
        with atomic_open(path, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
        manifest = self.manifest(video)
        for key in ("n_frames", "fps"):
            if key in meta:
                manifest[key] = meta.pop(key)
        manifest["video"] = video
        manifest["features"][name] = {
            "file": path.name,
            "shape": list(array.shape),
            "dtype": array.dtype.str,
            "config_hash": config_hash,
            "version": meta.pop("version", None),
            "meta": meta,
        }
        atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        return path

    def save_many(
        self, videos: Iterable[str], name: str, array: np.ndarray, config_hash: str, meta: Mapping[str, Any] | None
    ) -> None:
        """Save the same feature under several names (both people of a two-person video share its audio).

        Args:
            videos: the names, e.g. `<video>_left` and `<video>_right`.
            name: feature name.
            array: the values.
            config_hash: hash of the producing config.
            meta: as for `save`.
        """
        for v in videos:
            self.save(v, name, array, config_hash, meta)

    # -- read ----------------------------------------------------------------------------------------------------
    def _problem(self, video: str, name: str, config_hash: str | None, manifest: dict[str, Any]) -> str | None:
        """Why an entry is not usable, or None when it is."""
        record = manifest["features"].get(name)
        if record is None:
            return "not in the manifest"
        if config_hash is not None and record.get("config_hash") != config_hash:
            return "computed with another config"
        path = self.video_dir(video) / record.get("file", f"{name}.npy")
        if not path.is_file():
            return f"{path.name} is missing"
        try:
            shape, dtype, nbytes = npy_header(path)
        except (ValueError, OSError, SyntaxError) as exc:
            return f"{path.name} has a damaged header ({exc})"
        if list(shape) != list(record.get("shape", [])) or dtype.str != record.get("dtype"):
            said = f"{record.get('shape')} {record.get('dtype')}"
            return f"{path.name} holds {list(shape)} {dtype.str}, the manifest says {said}"
        if path.stat().st_size != nbytes:
            return f"{path.name} is {path.stat().st_size} bytes, expected {nbytes} (truncated or damaged)"
        n_frames = manifest.get("n_frames")
        if n_frames is not None and shape and shape[0] != n_frames:
            return f"{path.name} has {shape[0]} rows but the video has {n_frames} frames"
        return None

    def has(self, video: str, name: str, config_hash: str) -> bool:
        """Whether a complete, undamaged entry computed with this config exists.

        Args:
            video: video name.
            name: feature name.
            config_hash: hash of the config that would produce it now.
        """
        try:
            return self._problem(video, name, config_hash, self.manifest(video)) is None
        except CacheError:
            return False

    def todo(self, videos: Iterable[str], name: str, config_hash: str) -> list[str]:
        """The videos whose `name` entry must be (re)computed, in the given order.

        Args:
            videos: candidate video names.
            name: feature name.
            config_hash: hash of the current config.
        """
        return [v for v in videos if not self.has(v, name, config_hash)]

    def load(
        self, video: str, names: Iterable[str], mmap: bool = False, config_hashes: Mapping[str, str] | None = None
    ) -> dict[str, np.ndarray]:
        """Read features of one video.

        Args:
            video: video name.
            names: feature names.
            mmap: memory-map the files read-only instead of reading them.
            config_hashes: optional {name: hash}; a mismatch is an error rather than stale data.

        Raises:
            CacheError: naming the video, the feature and what is wrong with it.
        """
        manifest = self.manifest(video)
        out: dict[str, np.ndarray] = {}
        for name in names:
            problem = self._problem(video, name, (config_hashes or {}).get(name), manifest)
            if problem is not None:
                have = ", ".join(sorted(manifest["features"])) or "nothing"
                raise CacheError(f"{self.video_dir(video)}: feature {name!r} unusable: {problem} (cached: {have})")
            path = self.video_dir(video) / manifest["features"][name]["file"]
            out[name] = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        return out
