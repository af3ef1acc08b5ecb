"""Score predictions against annotation files, the way the challenge does: one global CCC over all frames."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from core.errors import printable
from submissions.bootstrap import LEVEL, RESAMPLES, SEED, BootstrapCI, bootstrap_ci, cluster_stats
from submissions.errors import FormatError, Problem
from submissions.formats import Predictions, read_annotation_dir, read_predictions
from submissions.metrics import VAScore, score_va


@dataclass(frozen=True)
class ScoreReport:
    """The global score plus per-video detail.

    Args:
        total: P_VA over all frames of all videos concatenated (the challenge score).
        per_video: each video's own score (for inspection only; the challenge does not average these).
        videos: videos scored.
    """

    total: VAScore
    per_video: dict[str, VAScore | None] = field(default_factory=dict)
    videos: int = 0
    inputs: tuple[Predictions, Predictions] | None = field(default=None, repr=False, compare=False)

    def bootstrap(self, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> BootstrapCI | None:
        """The video-bootstrap interval of `total` (`submissions.bootstrap`); None when the inputs were not kept.

        Args:
            resamples: resamples to draw.
            seed: seed of the draws.
            level: coverage.
        """
        if self.inputs is None:
            return None
        preds, labels = self.inputs
        return bootstrap_ci(cluster_stats(labels, preds), resamples=resamples, seed=seed, level=level)

    def as_dict(self) -> dict:
        return {
            "total": self.total.as_dict(),
            "videos": self.videos,
            "per_video": {k: (v.as_dict() if v else None) for k, v in self.per_video.items()},
        }


def score_predictions(preds: Predictions, labels: Predictions, source: str = "<predictions>") -> ScoreReport:
    """Score per-video predictions against per-video labels (every labelled video must be predicted).

    Args:
        preds: video -> (N, 2) predictions.
        labels: video -> (N, 2) labels with -5 for unannotated frames.
        source: name of the prediction file, for messages.

    Raises:
        FormatError: a labelled video without predictions, or a frame-count mismatch (each named).
    """
    problems = []
    for v in sorted(labels):
        if v not in preds:
            problems.append(Problem(source, 0, f"no predictions for labelled video {v!r}", "missing_video"))
        elif preds[v].shape[0] != labels[v].shape[0]:
            problems.append(Problem(source, 0, f"video {v!r}: {preds[v].shape[0]} predicted frames, "
                                    f"{labels[v].shape[0]} labelled frames", "length"))
    if problems:
        raise FormatError(problems)
    videos = sorted(labels)
    truth = np.concatenate([labels[v] for v in videos])
    pred = np.concatenate([preds[v] for v in videos])
    per_video: dict[str, VAScore | None] = {}
    for v in videos:
        try:
            per_video[v] = score_va(labels[v], preds[v])
        except ValueError:
            per_video[v] = None  # a video with fewer than 2 annotated frames has no score of its own
    return ScoreReport(total=score_va(truth, pred), per_video=per_video, videos=len(videos),
                       inputs=(preds, labels))  # kept (no copy) for `bootstrap()`


def score_files(pred_path: str | Path, labels_dir: str | Path, shown: str | None = None) -> ScoreReport:
    """Score a prediction file (either layout) against a folder of annotation files.

    Args:
        pred_path: the prediction file or folder.
        labels_dir: the folder of annotation files.
        shown: the name messages give the predictions (`PKG.zip!predictions.csv` for a member extracted to a
            temporary folder); None: `pred_path`.
    """
    name = shown or str(pred_path)
    try:
        preds = read_predictions(pred_path)
    except FormatError as exc:
        if shown is None:
            raise
        inside = {str(pred_path), printable(str(pred_path))}
        raise FormatError([replace(p, path=shown) if p.path in inside else p for p in exc.problems]) from None
    return score_predictions(preds, read_annotation_dir(labels_dir), name)
