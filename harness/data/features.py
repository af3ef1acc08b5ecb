"""Visual features: the one extractor and the one cache-key recipe, for stage 1, preprocess and predict.

`encode_videos` runs encoders (ViTs with `forward_features`) over the face crops of a list of videos and writes
one CLS row per frame into the feature cache, zeros and `visual_mask` False where a frame has no crop.
`feature_hash` names the features by what made the encoder. Sharded runs give each process its own videos
(`harness.runtime.sharding`); the cache's per-video locks keep them apart.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from core.errors import HarnessError
from core.hashing import stable_hash
from harness.config import Config
from harness.data.datasets import VISUAL_MASK, CacheLike, crop_files, frame_transform, read_crop
from harness.runtime.progress import StepProgress
from preprocessing.affwild2 import VideoEntry
from preprocessing.cache import FeatureCache

FEATURE_VERSION = 1
MASK_HASH = stable_hash({"feature": VISUAL_MASK, "version": FEATURE_VERSION})
"""`visual_mask` depends only on which crops exist, not on the encoder: one hash for every encoder."""


def feature_hash(cfg: Config, *, train_videos: Sequence[str] | None = None, weights: str | Path | None = None,
                 unfinetuned: bool = False) -> str:  # fmt: skip
    """The cache key of visual features: everything they depend on, for an encoder trained here or read from a file.

    One recipe for stage 1, `harness preprocess --encoder` and `harness predict VIDEO`, so that one encoder gives
    one key wherever it runs. An encoder stage 1 trains is named by what made it (encoder, stage-1 settings, seed,
    training videos), which is known before training, so cached features skip the training; an encoder file by its
    path, size and modification time, with the encoder section and the normalisation that feed it.

    Args:
        cfg: the config (its `encoder` section builds the ViT; `stage1.augment` normalises the crops).
        train_videos: the videos the encoder was trained on here (fine-tuned on, unless `unfinetuned`).
        weights: the encoder's weights file (instead of `train_videos`).
        unfinetuned: the hash of `visual_mae` (no fine-tuning settings); with `train_videos` only.

    Raises:
        HarnessError: neither or both of `train_videos` and `weights`.
    """
    if (train_videos is None) == (weights is None):
        raise HarnessError("feature_hash: give the training videos of an encoder trained here, or its weights file")
    d = cfg.to_dict()
    if weights is not None:
        path = Path(weights)
        stat = path.stat()
        return stable_hash({"weights": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                            "encoder": d["encoder"], "augment": d["stage1"]["augment"],
                            "version": FEATURE_VERSION})  # fmt: skip
    s1 = {k: v for k, v in d["stage1"].items() if k not in ("extract_batch", "extract_unfinetuned", "enabled")}
    if unfinetuned:
        # Pre-training reads no labels and every training video: fine-tuning's settings do not change it.
        tuning = ("finetune", "frames_per_video", "val_frames_per_video", "reserve")
        s1 = {k: v for k, v in s1.items() if k not in tuning}
    return stable_hash({"encoder": d["encoder"], "stage1": s1, "seed": d["seed"], "train": sorted(train_videos or ()),
                        "version": FEATURE_VERSION})  # fmt: skip


def frame_count(entry: Any, cache: CacheLike) -> int | None:
    """Frames of a video: the cache manifest's `n_frames`, else the annotation's rows, else the last crop's number.

    Args:
        entry: the `VideoEntry`.
        cache: the feature cache.
    """
    n = cache.manifest(entry.name).get("n_frames")
    if n is not None:
        return int(n)
    if entry.annotation is not None:
        from submissions.formats import read_annotation

        return int(read_annotation(entry.annotation).shape[0])
    names = [f for f in crop_files(entry.crops_dir) if f.endswith(".jpg") and f[:-4].isdigit()]
    return max(int(f[:-4]) for f in names) if names else None


@torch.no_grad()
def encode_videos(cfg: Config, entries: Sequence[VideoEntry], cache: FeatureCache,
                  encoders: Mapping[str, tuple[nn.Module, str]], progress: bool = False) -> list[str]:  # fmt: skip
    """CLS features of every frame of `entries` into the cache (and `visual_mask`), one decoding pass.

    The one feature extractor: stage 1 (its encoders after pre-training and fine-tuning), `harness preprocess
    --encoder` and `harness predict VIDEO` call it, each on the videos it owns (a sharded run: its shard's).

    Each crop is decoded and transformed once and fed to every encoder (Table III needs the encoder before and
    after fine-tuning: decoding dominates the cost on a CPU). A video is skipped for an encoder whose feature is
    cached with the same hash. Frames without a crop get a zero row and mask False.

    Args:
        cfg: the config.
        entries: the videos (`VideoEntry`: name, crops folder, annotation), in the order they are encoded.
        cache: the `FeatureCache` to write.
        encoders: feature name -> (ViT with `forward_features`, the feature's config hash).
        progress: a progress bar.

    Returns:
        the videos that have every feature afterwards.
    """
    size = cfg.encoder.vit.img_size
    transform = frame_transform(cfg.stage1.augment, size, train=False)
    for enc, _ in encoders.values():
        enc.eval()
    done: list[str] = []
    jobs: list[tuple[Any, int, dict[str, tuple[nn.Module, str]], list[int]]] = []
    for e in entries:
        n = frame_count(e, cache)
        if n is None:
            continue
        todo = {k: v for k, v in encoders.items() if not cache.has(e.name, k, v[1])}
        if not todo and cache.has(e.name, VISUAL_MASK, MASK_HASH):
            done.append(e.name)
            continue
        present = crop_files(e.crops_dir)
        jobs.append((e, n, todo, [i for i in range(n) if f"{i + 1:05d}.jpg" in present]))

    def save(job: tuple[Any, int, dict[str, tuple[nn.Module, str]], list[int]], feats: dict[str, np.ndarray]) -> None:
        e, n, todo, present = job
        mask = np.zeros(n, dtype=bool)
        mask[present] = True
        for k, (_, fhash) in todo.items():
            meta: dict[str, Any] = {"version": FEATURE_VERSION, "encoder": cfg.encoder.name,
                                    "frames_with_face": len(present)}  # fmt: skip
            if cache.manifest(e.name).get("n_frames") is None:
                meta["n_frames"] = n
            cache.save(e.name, k, feats[k], fhash, meta)
        cache.save(e.name, VISUAL_MASK, mask, MASK_HASH, {"version": FEATURE_VERSION})
        release = getattr(cache, "release", None)
        if release is not None:  # the video is whole: its lock goes, so a dataset's locks never pile up
            release([e.name])
        done.append(e.name)

    # One loader over every frame of every video, in video order: decoding runs in the worker processes while the
    # encoders run here; a video's features are saved (and freed) as soon as its last frame is through.
    items = [(j, i) for j, job in enumerate(jobs) for i in job[3]]
    paths = [str(jobs[j][0].crops_dir / f"{i + 1:05d}.jpg") for j, i in items]
    # Batches never span two videos: a video's rows then come from the same batches whichever other videos this
    # process encodes, so a sharded run writes the arrays of a one-process run (with several threads a row of a
    # matrix product can depend on the rows beside it).
    loader = DataLoader(_Crops(paths, transform), batch_sampler=video_batches([len(job[3]) for job in jobs],
                                                                              cfg.stage1.extract_batch),
                        num_workers=cfg.runtime.num_workers)  # fmt: skip
    bar = StepProgress(f"features {', '.join(encoders)}", total=len(jobs), enabled=progress, unit="videos")
    left = [len(job[3]) for job in jobs]
    feats: dict[int, dict[str, np.ndarray]] = {}
    nxt = 0  # the next job not yet saved
    pos = 0
    for imgs in itertools.chain(loader, [None]):
        while nxt < len(jobs) and left[nxt] == 0:  # videos complete so far (also those without any crop)
            e, n, todo, _present = jobs[nxt]
            save(jobs[nxt], feats.pop(nxt, None) or {k: np.zeros((n, m.config.embed_dim), np.float32)
                                                     for k, (m, _) in todo.items()})  # fmt: skip
            nxt += 1
            bar.advance(info=e.name)
        if imgs is None:
            break
        batch_items = items[pos : pos + imgs.shape[0]]
        pos += imgs.shape[0]
        outs = {k: m.forward_features(imgs.to(next(m.parameters()).device)).float().cpu().numpy()
                for k, (m, _) in encoders.items()}  # fmt: skip
        for r, (j, i) in enumerate(batch_items):
            e, n, todo, _present = jobs[j]
            if j not in feats:
                feats[j] = {k: np.zeros((n, m.config.embed_dim), np.float32) for k, (m, _) in todo.items()}
            for k in todo:
                feats[j][k][i] = outs[k][r]
            left[j] -= 1
    bar.close()
    return done


def video_batches(lengths: Sequence[int], batch: int) -> list[list[int]]:
    """Batches of consecutive item indices, `batch` at most, none spanning two videos.

    >>> video_batches([3, 0, 2], 2)
    [[0, 1], [2], [3, 4]]

    Args:
        lengths: each video's item count, in item order.
        batch: the largest batch.
    """
    out: list[list[int]] = []
    start = 0
    for n in lengths:
        out.extend(list(range(k, min(k + batch, start + n))) for k in range(start, start + n, batch))
        start += n
    return out


class _Crops(Dataset):
    """Face crops by path through the evaluation transform (feature extraction)."""

    def __init__(self, paths: list[str], transform: Any):
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(read_crop(self.paths[i]))
