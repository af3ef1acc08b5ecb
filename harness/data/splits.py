"""Folds of the paper's Table I as splits of the videos: fold 0 is the official split, folds 1..k a k-fold
cross-validation.

Fold 0 trains on Train_Set, validates on Validation_Set and predicts the test list. Folds 1..k split
Train_Set + Validation_Set by video: each video is held out exactly once, and the two people of a two-person
video (`<video>_left`, `<video>_right`) always fall on the same side, since they share the raw video and its audio.
The held-out videos of a CV fold are both its validation set (best epoch) and its reported score, as in the paper's
protocol; there is no separate test list for folds 1..k.

Videos reserved for stage 1 (`stage1.reserve`, see `reserve_videos`) are taken out of every fold: the paper fine-tunes
its encoder on Train_Set frames that are "excluded from later model training" (III.B), since features of frames the
encoder was fitted to are better on those frames than on any other, and a fusion model trained on them learns to
trust the visual stream more than it deserves.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import HarnessError
from preprocessing.affwild2 import AffWild2Layout

if TYPE_CHECKING:
    from harness.config import Config


class FoldError(HarnessError):
    """Folds that cannot be made (too few videos, an unknown fold index)."""


def group_key(name: str) -> str:
    """The raw video a name belongs to: `<video>_left`/`<video>_right` -> `<video>`."""
    for suffix in ("_left", "_right"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def make_folds(names: Sequence[str], k: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """Split videos into k (train, held-out) folds by raw video.

    Groups (raw videos) are shuffled with `seed`, then each goes to the fold with the fewest videos so far, so
    fold sizes differ by at most the size of one group (2). Lists come back sorted.

    Args:
        names: video names (unique).
        k: number of folds (>= 2).
        seed: shuffle seed.

    Raises:
        FoldError: k < 2, duplicate names, or fewer groups than folds.
    """
    if k < 2:
        raise FoldError(f"k must be >= 2, got {k}")
    if len(set(names)) != len(names):
        raise FoldError("video names must be unique")
    groups: dict[str, list[str]] = {}
    for n in sorted(names):
        groups.setdefault(group_key(n), []).append(n)
    if len(groups) < k:
        raise FoldError(f"{len(groups)} raw videos cannot make {k} folds")
    keys = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    held: list[list[str]] = [[] for _ in range(k)]
    for i in order:
        target = min(range(k), key=lambda f: (len(held[f]), f))
        held[target].extend(groups[keys[i]])
    out = []
    for f in range(k):
        val = sorted(held[f])
        vs = set(val)
        out.append((sorted(n for n in names if n not in vs), val))
    return out


def reserve_videos(names: Sequence[str], share: float, seed: int) -> tuple[list[str], list[str]]:
    """Split training videos into (kept for stage 2, reserved for stage 1) by raw video.

    `round(share * raw videos)` raw videos, drawn with `seed`, are reserved (at least one when `share` > 0, and
    never all of them); both people of a two-person video go to the same side. Lists come back sorted.

    Args:
        names: training video names (unique).
        share: fraction of the raw videos to reserve, in [0, 1).
        seed: draw seed.

    Raises:
        FoldError: share outside [0, 1), duplicate names, or share > 0 with fewer than two raw videos.
    """
    if not 0.0 <= share < 1.0:
        raise FoldError(f"the reserved share must be in [0, 1), got {share}")
    if len(set(names)) != len(names):
        raise FoldError("video names must be unique")
    if share == 0.0:
        return sorted(names), []
    groups: dict[str, list[str]] = {}
    for n in sorted(names):
        groups.setdefault(group_key(n), []).append(n)
    if len(groups) < 2:
        raise FoldError(f"{len(groups)} raw training video(s) cannot be split between stage 1 and stage 2")
    count = min(len(groups) - 1, max(1, round(share * len(groups))))
    keys = sorted(groups)
    chosen = {keys[i] for i in np.random.default_rng([seed, 0x5E7]).permutation(len(keys))[:count]}
    reserved = sorted(n for key in chosen for n in groups[key])
    taken = set(reserved)
    return sorted(n for n in names if n not in taken), reserved


@dataclass(frozen=True)
class Fold:
    """The videos of one fold.

    Args:
        index: 0 (official split) or 1..k.
        train: training videos.
        val: validation videos (held-out fold for 1..k).
        test: videos to predict besides `val` (the test list for fold 0, empty otherwise).
    """

    index: int
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def identity(self) -> dict[str, Any]:
        """What identifies the fold in a run's hash."""
        return {"fold": self.index, "train": list(self.train), "val": list(self.val), "test": list(self.test)}


def stage1_reserved(layout: AffWild2Layout, cfg: Config) -> list[str]:
    """The training videos of a layout that the config's `stage1.reserve` keeps for stage 1 (drawn with
    `experiment.fold_seed`; empty when the reserve is 0): what fine-tuning reads and every fold leaves out."""
    return reserve_videos([e.name for e in layout.train], cfg.stage1.reserve, cfg.experiment.fold_seed)[1]


def fold_split(layout: AffWild2Layout, index: int, k: int, seed: int, reserved: Collection[str] = ()) -> Fold:
    """Fold `index` of a dataset layout (`AffWild2Layout`).

    Args:
        layout: with `.train`, `.validation`, `.test` lists of entries having `.name`.
        index: 0..k.
        k: number of CV folds.
        seed: fold seed.
        reserved: training videos kept for stage 1 (`reserve_videos`), left out of the fold.

    Raises:
        FoldError: index outside 0..k.
    """
    out = set(reserved)
    train = [e.name for e in layout.train if e.name not in out]
    val = [e.name for e in layout.validation]
    if index == 0:
        return Fold(0, tuple(train), tuple(val), tuple(e.name for e in layout.test))
    if not 1 <= index <= k:
        raise FoldError(f"fold {index} outside 0..{k}")
    tr, va = make_folds(train + val, k, seed)[index - 1]
    return Fold(index, tuple(tr), tuple(va), ())
