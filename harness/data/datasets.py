"""Datasets of both stages: face-crop frames (stage 1) and feature windows from the cache (stage 2).

Stage 2 reads every window from the feature cache's `.npy` files memory-mapped (`FeatureCache.load(mmap=True)`),
so memory grows with the batch, not with the dataset. Features are normalised with per-dimension mean and
standard deviation of the TRAINING videos only (`compute_norm_stats`); visual rows of frames without a face
(`visual_mask` False, zeros in the cache) are set to 0 after normalisation, i.e. to the training mean, so that a
missing face looks like an average face rather than an extreme one.

Labels are the annotation file's rows made as long as the cached features (`reconcile_lengths`: extra label rows
dropped, missing ones -5); frames labelled -5 in either column are masked out of the loss and the score.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from core.atomic import atomic_open
from core.errors import HarnessError
from core.safe_read import ReadError, read_npz
from harness.config import AugmentConfig, FeaturesConfig
from harness.data.windows import window_starts
from harness.folders.cache import PreprocessDir
from submissions.formats import read_annotation
from submissions.metrics import UNANNOTATED

VISUAL_MASK = "visual_mask"
"""Cache feature: True where the frame has a face crop (its visual row is real)."""


class DataError(HarnessError):
    """Features or labels that cannot be used (missing from the cache, inconsistent lengths)."""


class CacheLike(Protocol):
    """What the datasets need of `preprocessing.cache.FeatureCache`."""

    def load(self, video: str, names: Iterable[str], mmap: bool = False) -> dict[str, np.ndarray]: ...

    def manifest(self, video: str) -> dict[str, Any]: ...


# ---------------------------------------------------------------------------------------------------------------
# Frames and labels
# ---------------------------------------------------------------------------------------------------------------


def video_frames(cache: CacheLike, video: str, feature: str) -> int:
    """Number of frames of a cached video: the manifest's `n_frames`, else the rows of `feature`.

    Args:
        cache: the feature cache.
        video: video name.
        feature: a feature cached for the video.
    """
    n = cache.manifest(video).get("n_frames")
    if n is not None:
        return int(n)
    return int(cache.load(video, [feature], mmap=True)[feature].shape[0])


def load_labels(annotation: Path | None, n_frames: int | None) -> np.ndarray:
    """(n_frames, 2) float32 labels of a video, -5 where unannotated or when there is no annotation file.

    Args:
        annotation: the annotation file (None: every frame -5).
        n_frames: frames the labels must cover (extra rows dropped, missing rows -5); None keeps the file's rows.
    """
    from preprocessing.affwild2 import reconcile_lengths

    if annotation is None:
        if n_frames is None:
            raise DataError("load_labels: without an annotation file the frame count is needed")
        return np.full((n_frames, 2), UNANNOTATED, dtype=np.float32)
    if n_frames is None:
        return read_annotation(annotation).astype(np.float32)
    labels, _report = reconcile_lengths(read_annotation(annotation), n_frames)
    return labels.astype(np.float32)


def valid_label_mask(labels: np.ndarray) -> np.ndarray:
    """True for rows where neither valence nor arousal is -5."""
    return ~(labels == UNANNOTATED).any(axis=-1)


# ---------------------------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------------------------


MAX_STATS_BYTES = 16 * 1024 * 1024
"""`norm_stats.npz`: four vectors of a few hundred floats and two counts (a few kB); a member that inflates past
this is refused before it is read."""

_STAT_VECTORS = ("visual_mean", "visual_std", "audio_mean", "audio_std")
_STAT_COUNTS = ("frames", "face_frames")


@dataclass(frozen=True)
class NormStats:
    """Per-dimension mean and standard deviation of the visual and audio streams (training videos only).

    Args:
        visual_mean: (Dv,).
        visual_std: (Dv,), floored so constant dimensions divide by 1.
        audio_mean: (Da,).
        audio_std: (Da,).
        frames: training frames the audio statistics cover.
        face_frames: training frames with a face (the visual statistics cover these).
    """

    visual_mean: np.ndarray
    visual_std: np.ndarray
    audio_mean: np.ndarray
    audio_std: np.ndarray
    frames: int
    face_frames: int

    def save(self, path: str | os.PathLike) -> None:
        """Write as .npz, atomically."""
        with atomic_open(path, "wb") as fh:
            np.savez(fh, visual_mean=self.visual_mean, visual_std=self.visual_std, audio_mean=self.audio_mean,
                     audio_std=self.audio_std, frames=self.frames, face_frames=self.face_frames)  # fmt: skip

    @classmethod
    def load(cls, path: str | os.PathLike) -> NormStats:
        """Read what `save` wrote."""
        if not Path(path).is_file():
            raise DataError(f"{path}: normalisation statistics not found (the run did not finish its setup)")
        z = read_npz(path, "normalisation statistics", MAX_STATS_BYTES, MAX_STATS_BYTES, max_members=16)
        for key in (*_STAT_VECTORS, *_STAT_COUNTS):
            arr = z.get(key)
            vector = key in _STAT_VECTORS
            if arr is None or arr.ndim != (1 if vector else 0) or arr.dtype.kind not in ("f" if vector else "iu"):
                want = "a 1-d float array" if vector else "one integer"
                got = "nothing" if arr is None else f"a {arr.dtype} array of shape {arr.shape}"
                raise ReadError(path, f"damaged normalisation statistics: {key!r} should be {want}, holds {got}; "
                                "delete the file to recompute it", code="type")  # fmt: skip
        for kind in ("visual", "audio"):
            if z[f"{kind}_mean"].shape != z[f"{kind}_std"].shape:
                raise ReadError(path, f"damaged normalisation statistics: {kind}_mean and {kind}_std differ in "
                                "length; delete the file to recompute it", code="type")  # fmt: skip
        return cls(*(z[k] for k in _STAT_VECTORS), *(int(z[k]) for k in _STAT_COUNTS))


class _Moments:
    """Streaming sum and sum of squares in float64 (chunks of rows)."""

    def __init__(self) -> None:
        self.n = 0
        self.s: np.ndarray | None = None
        self.ss: np.ndarray | None = None

    def add(self, x: np.ndarray) -> None:
        if x.shape[0] == 0:
            return
        x = np.asarray(x, dtype=np.float64)
        if self.s is None:
            self.s, self.ss = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        self.s += x.sum(0)
        self.ss += (x * x).sum(0)  # type: ignore[operator]
        self.n += x.shape[0]

    def result(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        if self.n == 0 or self.s is None:
            return np.zeros(dim, np.float32), np.ones(dim, np.float32)
        mean = self.s / self.n
        var = np.maximum(self.ss / self.n - mean * mean, 0.0)  # type: ignore[operator]
        std = np.sqrt(var)
        std = np.where(std < 1e-6, 1.0, std)
        return mean.astype(np.float32), std.astype(np.float32)


def compute_norm_stats(
    cache: CacheLike, videos: Sequence[str], features: FeaturesConfig, chunk: int = 4096
) -> NormStats:
    """Mean and std per dimension over the given (training) videos, streamed from the cache.

    Args:
        cache: the feature cache.
        videos: training videos only.
        features: which features.
        chunk: rows read at a time.
    """
    vis, aud = _Moments(), _Moments()
    dv = da = 0
    for video in videos:
        arrays = _load(cache, video, features)
        v, m, a = arrays[features.visual], arrays[VISUAL_MASK], _audio_parts(arrays, features)
        dv, da = v.shape[1], sum(p.shape[1] for p in a)
        for start in range(0, v.shape[0], chunk):
            rows = slice(start, start + chunk)
            mask = np.asarray(m[rows], dtype=bool)
            vis.add(np.asarray(v[rows])[mask])
            aud.add(np.concatenate([np.asarray(p[rows]) for p in a], axis=1))
    if not videos:
        raise DataError("normalisation statistics need at least one training video")
    vm, vs = vis.result(dv)
    am, as_ = aud.result(da)
    return NormStats(vm, vs, am, as_, aud.n, vis.n)


# ---------------------------------------------------------------------------------------------------------------
# Stage 2: windows
# ---------------------------------------------------------------------------------------------------------------


def stream_arrays(features: FeaturesConfig) -> tuple[str, ...]:
    """The cached arrays a video's two streams are read from: the visual feature, its mask, the audio features."""
    return (features.visual, VISUAL_MASK, *features.audio)


def has_features(cache: CacheLike, video: str, features: FeaturesConfig) -> bool:
    """Whether the cache holds every feature of `features` (and the visual mask) for `video`."""
    have = cache.manifest(video).get("features", {})
    return all(n in have for n in stream_arrays(features))


def _load(cache: CacheLike, video: str, features: FeaturesConfig) -> dict[str, np.ndarray]:
    arrays = cache.load(video, stream_arrays(features), mmap=True)
    n = {k: int(v.shape[0]) for k, v in arrays.items()}
    if len(set(n.values())) != 1:
        raise DataError(f"{video}: cached features differ in length: {n}")
    return arrays


def _audio_parts(arrays: Mapping[str, np.ndarray], features: FeaturesConfig) -> list[np.ndarray]:
    return [arrays[a] for a in features.audio]


def normalised_streams(
    arrays: Mapping[str, np.ndarray], features: FeaturesConfig, stats: NormStats, rows: slice = slice(None)
) -> tuple[np.ndarray, np.ndarray]:
    """(visual (n, Dv), audio (n, Da)) float32 rows of one video, normalised; no-face visual rows are 0.

    Args:
        arrays: the video's cached arrays (memory-mapped is fine: only `rows` are read).
        features: which features.
        stats: training statistics.
        rows: the frames to read.
    """
    v = (np.asarray(arrays[features.visual][rows], dtype=np.float32) - stats.visual_mean) / stats.visual_std
    v[~np.asarray(arrays[VISUAL_MASK][rows], dtype=bool)] = 0.0
    a = np.concatenate([np.asarray(p[rows], dtype=np.float32) for p in _audio_parts(arrays, features)], axis=1)
    a = (a - stats.audio_mean) / stats.audio_std
    return v.astype(np.float32, copy=False), a.astype(np.float32, copy=False)


def load_video_streams(
    cache: CacheLike, video: str, features: FeaturesConfig, stats: NormStats
) -> tuple[np.ndarray, np.ndarray]:
    """Whole-video normalised streams (for prediction).

    Args:
        cache: the feature cache.
        video: video name.
        features: which features.
        stats: training statistics.
    """
    return normalised_streams(_load(cache, video, features), features, stats)


@dataclass(frozen=True)
class StreamReader:
    """Whole-video streams of one feature set, normalised with one run's training statistics.

    Args:
        cache: the feature cache.
        features: which features.
        stats: the training videos' normalisation statistics.
    """

    cache: CacheLike
    features: FeaturesConfig
    stats: NormStats

    def __call__(self, video: str) -> tuple[np.ndarray, np.ndarray]:
        """(visual (N, Dv), audio (N, Da)) of `video`, normalised."""
        return load_video_streams(self.cache, video, self.features, self.stats)


class WindowDataset(Dataset):
    """Fixed-length windows over cached videos, padded and masked at the end of short videos.

    Items are dicts: `visual` (L, Dv) float32, `audio` (L, Da) float32, `labels` (L, 2) float32,
    `pad_mask` (L,) bool (True = padding), `label_mask` (L,) bool (True = counts in the loss).

    Args:
        cache: the feature cache.
        labels: video -> (N, 2) labels (-5 = unannotated), N = the video's cached frames.
        features: which features.
        stats: training normalisation statistics.
        length: window length L.
        stride: window stride.
    """

    def __init__(self, cache: CacheLike, labels: Mapping[str, np.ndarray], features: FeaturesConfig,
                 stats: NormStats, length: int, stride: int):  # fmt: skip
        self.cache, self.features, self.stats, self.length = cache, features, stats, length
        self.labels = dict(labels)
        self.items: list[tuple[str, int]] = []
        for video in sorted(self.labels):
            n = self.labels[video].shape[0]
            self.items.extend((video, s) for s in window_starts(n, length, stride))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        video, start = self.items[i]
        arrays = _load(self.cache, video, self.features)
        lab = self.labels[video]
        if arrays[self.features.visual].shape[0] != lab.shape[0]:
            raise DataError(f"{video}: {lab.shape[0]} label rows but {arrays[self.features.visual].shape[0]} "
                            "cached frames")  # fmt: skip
        rows = slice(start, start + self.length)
        v, a = normalised_streams(arrays, self.features, self.stats, rows)
        y = lab[rows]
        n, L = v.shape[0], self.length
        pad = np.zeros(L, dtype=bool)
        if n < L:
            pad[n:] = True
            v = np.concatenate([v, np.zeros((L - n, v.shape[1]), np.float32)])
            a = np.concatenate([a, np.zeros((L - n, a.shape[1]), np.float32)])
            y = np.concatenate([y, np.full((L - n, 2), UNANNOTATED, np.float32)])
        valid = valid_label_mask(y) & ~pad
        return {
            "visual": torch.from_numpy(np.ascontiguousarray(v)),
            "audio": torch.from_numpy(np.ascontiguousarray(a)),
            "labels": torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)),
            "pad_mask": torch.from_numpy(pad),
            "label_mask": torch.from_numpy(valid),
        }


# ---------------------------------------------------------------------------------------------------------------
# Stage 1: frames
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameItem:
    """One labelled face crop.

    Args:
        path: the JPEG.
        valence: label.
        arousal: label.
    """

    path: str
    valence: float
    arousal: float


def evenly_spaced(n: int, k: int | None) -> np.ndarray:
    """Indices of `k` evenly spaced items out of `n` (all of them when k is None or >= n)."""
    if k is None or k >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(int))


def crop_files(crops_dir: Path | None) -> set[str]:
    """File names present in a crop folder (empty when there is none)."""
    if crops_dir is None or not crops_dir.is_dir():
        return set()
    return set(os.listdir(crops_dir))


def labelled_frames(entries: Iterable[Any], per_video: int | None) -> list[FrameItem]:
    """Frames that have both a face crop and a label (neither value -5), evenly subsampled per video.

    Args:
        entries: `VideoEntry`s with `crops_dir` and `annotation`.
        per_video: frames kept per video; None keeps all.
    """
    items: list[FrameItem] = []
    for e in entries:
        if e.annotation is None or e.crops_dir is None:
            continue
        present = crop_files(e.crops_dir)
        labels = read_annotation(e.annotation)
        ok = [i for i in range(labels.shape[0]) if f"{i + 1:05d}.jpg" in present and (labels[i] != UNANNOTATED).all()]
        for j in evenly_spaced(len(ok), per_video):
            i = ok[j]
            items.append(FrameItem(str(e.crops_dir / f"{i + 1:05d}.jpg"), float(labels[i, 0]), float(labels[i, 1])))
    return items


def frame_transform(aug: AugmentConfig, img_size: int, train: bool) -> Any:
    """torchvision v2 transform of a uint8 (3, H, W) crop to a normalised float (3, S, S) image.

    Training adds the paper's augmentation (IV.C): random resized crop, horizontal flip, rotation.

    Args:
        aug: augmentation and normalisation settings.
        img_size: output side S.
        train: with augmentation.
    """
    from torchvision.transforms import v2

    norm = [v2.ToDtype(torch.float32, scale=True), v2.Normalize([aug.mean] * 3, [aug.std] * 3)]
    if not train:
        return v2.Compose([v2.Resize((img_size, img_size), antialias=True), *norm])
    return v2.Compose([
        v2.RandomResizedCrop(img_size, scale=aug.crop_scale, ratio=aug.crop_ratio, antialias=True),
        v2.RandomHorizontalFlip(aug.hflip),
        v2.RandomRotation(aug.rotation),
        *norm,
    ])  # fmt: skip


def read_crop(path: str | Path) -> torch.Tensor:
    """A face crop as uint8 (3, H, W) RGB.

    Raises:
        DataError: the file cannot be decoded.
    """
    from torchvision.io import ImageReadMode, decode_image

    try:
        return decode_image(str(path), mode=ImageReadMode.RGB)
    except (RuntimeError, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode the face crop ({exc})") from exc


class FrameDataset(Dataset):
    """Labelled face crops for frame-level training: items `{"image": (3, S, S), "labels": (2,)}`.

    Args:
        items: the frames.
        transform: `frame_transform(...)`.
    """

    def __init__(self, items: Sequence[FrameItem], transform: Any):
        self.items, self.transform = list(items), transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        it = self.items[i]
        return {
            "image": self.transform(read_crop(it.path)),
            "labels": torch.tensor([it.valence, it.arousal], dtype=torch.float32),
        }


def open_dataset(data: str | Path, cache: str | Path | None = None) -> tuple[Any, Any]:
    """(layout, feature cache) of a dataset root; the cache defaults to `<data>/features` (where
    `harness preprocess DATA --out DATA` puts it).

    Args:
        data: the Aff-Wild2-layout root.
        cache: the feature cache root.
    """
    from preprocessing.affwild2 import AffWild2Layout
    from preprocessing.cache import FeatureCache

    layout = AffWild2Layout.discover(data)
    return layout, FeatureCache(Path(cache) if cache else PreprocessDir(data).features)
