"""Build a face detector by name; the weights come from the weights folder filled by `harness fetch-weights`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from preprocessing.faces.base import FaceDetector, FaceError

DETECTORS = ("scrfd", "mtcnn", "retinaface")
DEFAULT_DETECTOR = "scrfd"


def get_detector(
    name: str = DEFAULT_DETECTOR,
    weights: str | Path | None = None,
    weights_dir: str | Path | None = None,
    **options: Any,
) -> FaceDetector:
    """A ready face detector.

    Args:
        name: "scrfd" (default), "mtcnn" or "retinaface".
        weights: explicit weights file (SCRFD / RetinaFace); by default the file in the weights folder.
        weights_dir: the weights folder (default: $BDCA_WEIGHTS or ~/.cache/bdca-harness/weights).
        **options: detector settings, e.g. input_size / score_threshold for SCRFD.

    Raises:
        WeightsMissingError: the weights file is absent (run `harness fetch-weights`).
        FaceError: unknown name.
    """
    key = name.lower()
    if key == "scrfd":
        from preprocessing.faces.scrfd import ScrfdDetector

        return ScrfdDetector(weights=weights, weights_dir=weights_dir, **options)
    if key == "mtcnn":
        from preprocessing.faces.mtcnn import MtcnnDetector

        return MtcnnDetector(weights_dir=weights_dir, **options)
    if key == "retinaface":
        from preprocessing.faces.retinaface import RetinaFaceDetector

        return RetinaFaceDetector(weights=weights, **options)
    raise FaceError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
