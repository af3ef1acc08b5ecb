"""A tiny synthetic Aff-Wild2 corpus for the harness tests: the folder layout, labels, face crops, cached features.

Labels are smooth valence/arousal curves; the cached visual and audio features are noisy linear images of them
(so a model can learn something in a few steps); some frames are unannotated (-5) and some have no face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.widths import AUDIO_FEATURE_WIDTHS
from preprocessing.affwild2 import AffWild2Layout
from preprocessing.cache import FeatureCache
from preprocessing.corpus.labels import expression_classes
from submissions.formats import image_location, write_annotation, write_expr_annotation

AUDIO = dict(AUDIO_FEATURE_WIDTHS)


def curves(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / 25.0
    f1, f2 = rng.uniform(0.1, 0.4, 2)
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    v = 0.6 * np.sin(2 * np.pi * f1 * t + p1) + rng.uniform(-0.2, 0.2)
    a = 0.5 * np.cos(2 * np.pi * f2 * t + p2) + rng.uniform(-0.1, 0.3)
    return np.clip(np.stack([v, a], 1), -1, 1)


def make_corpus(
    root: Path,
    train: int = 6,
    val: int = 3,
    test: int = 2,
    frames: tuple[int, int] = (40, 90),
    visual_dim: int = 16,
    crops: bool = False,
    crop_size: int = 32,
    pair: bool = True,
    seed: int = 0,
    expr: bool = False,
) -> tuple[AffWild2Layout, FeatureCache]:
    """Write the corpus under `root` (layout) and `root/cache` (features); return both.

    Args:
        root: dataset root.
        train: training videos.
        val: validation videos.
        test: test videos (with organiser labels and a sample file).
        frames: (min, max) frames per video.
        visual_dim: width of the cached visual features.
        crops: also write face-crop JPEGs (for stage 1), brightness following the labels.
        crop_size: side of the crops.
        pair: make the first two training videos a `_left`/`_right` pair.
        seed: randomness.
        expr: also write expression labels for the training and validation videos (classes from the curves, -1
            on the first half of each -5 stretch), drawn without touching the other draws.
    """
    rng = np.random.default_rng(seed)
    wv = rng.normal(size=(2, visual_dim))
    wa = {k: rng.normal(size=(2, d)) for k, d in AUDIO.items()}
    names = {
        "train": [f"tr{i:02d}" for i in range(train)],
        "val": [f"va{i:02d}" for i in range(val)],
        "test": [f"te{i:02d}" for i in range(test)],
    }
    if pair and train >= 2:
        names["train"][0], names["train"][1] = "pair00_left", "pair00_right"
    folders = {
        "train": root / "annotations/VA_Estimation_Challenge/Train_Set",
        "val": root / "annotations/VA_Estimation_Challenge/Validation_Set",
        "test": root / "organiser/VA_Estimation_Challenge/Test_Set",
    }
    expr_folders = {"train": root / "annotations/EXPR_Classification_Challenge/Train_Set",
                    "val": root / "annotations/EXPR_Classification_Challenge/Validation_Set"}  # fmt: skip
    cache = FeatureCache(root / "cache")
    sample_rows = []
    for split, vids in names.items():
        for v in vids:
            n = int(rng.integers(frames[0], frames[1] + 1))
            lab = curves(n, rng)
            labels = lab.copy()
            k = int(rng.integers(0, n // 8 + 1))
            s = int(rng.integers(0, n - k + 1))
            labels[s : s + k] = -5.0
            write_annotation(folders[split] / f"{v}.txt", labels)
            if expr and split != "test":
                classes = expression_classes(lab, 25.0)
                classes[s : s + k // 2] = -1
                write_expr_annotation(expr_folders[split] / f"{v}.txt", classes)
            face = np.ones(n, dtype=bool)
            face[rng.integers(0, n, size=n // 10)] = False
            visual = (lab @ wv + 0.3 * rng.normal(size=(n, visual_dim))).astype(np.float32)
            visual[~face] = 0.0
            meta = {"n_frames": n, "fps": 25.0}
            cache.save(v, "visual", visual, "synthetic", meta)
            cache.save(v, "visual_mae", (visual + rng.normal(size=visual.shape)).astype(np.float32), "synthetic")
            cache.save(v, "visual_mask", face, "synthetic")
            for name, w in wa.items():
                cache.save(v, name, (lab[:, ::-1] @ w + 0.5 * rng.normal(size=(n, w.shape[1]))).astype(np.float32),
                           "synthetic")  # fmt: skip
            if crops:
                _write_crops(root / "cropped_aligned" / v, lab, face, crop_size, rng)
            if split == "test":
                sample_rows += [f"{image_location(v, i + 1)},0,0" for i in range(n)]
    cache.close()
    (root / "VA_test_set_release.txt").write_text("".join(f"{v}\n" for v in names["test"]))
    (root / "VA_test_set_sample.txt").write_text("image_location,valence,arousal\n" + "\n".join(sample_rows) + "\n")
    return AffWild2Layout.discover(root), FeatureCache(root / "cache")


def _write_crops(folder: Path, lab: np.ndarray, face: np.ndarray, size: int, rng: np.random.Generator) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i, (v, a) in enumerate(lab):
        if not face[i]:
            continue
        r = 0.5 + 0.4 * v * xx
        g = 0.5 + 0.4 * a * yy
        b = 0.5 + 0.2 * rng.normal(size=(size, size))
        img = (np.clip(np.stack([r, g, b], -1), 0, 1) * 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i + 1:05d}.jpg", quality=90)
