"""What every face detector returns and promises: `Face`, the `FaceDetector` protocol and the face errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from core.errors import HarnessError


class FaceError(HarnessError):
    """Base of the deliberate errors of `preprocessing.faces`."""


class WeightsMissingError(FaceError, FileNotFoundError):
    """A detector's weights file is not on disk (weights are never downloaded at run time)."""


class AlignError(FaceError, ValueError):
    """Landmarks from which no similarity transform can be estimated (degenerate or non-finite points)."""


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the image it was found in.

    Coordinates follow the usual detector convention: pixel (i, j) has its centre at x=j, y=i.

    Args:
        box: (4,) float32 x1, y1, x2, y2.
        score: detection probability in [0, 1].
        landmarks: (5, 2) float32 x, y of the left eye, right eye, nose tip, left and right mouth corners
            ("left" as seen in the image, i.e. smaller x on a frontal face).
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray

    @property
    def area(self) -> float:
        """Box area in square pixels (0 for an empty box)."""
        w = max(0.0, float(self.box[2] - self.box[0]))
        h = max(0.0, float(self.box[3] - self.box[1]))
        return w * h

    @property
    def center_x(self) -> float:
        """Horizontal centre of the box."""
        return float(self.box[0] + self.box[2]) / 2.0


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces with five landmarks in RGB uint8 images."""

    name: str

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one HxWx3 uint8 RGB image, best score first."""
        ...

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """`detect` for each image of a sequence (implementations may batch the network call)."""
        ...


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of `a` with every box of `b`.

    Args:
        a: (N, 4) x1, y1, x2, y2.
        b: (M, 4) x1, y1, x2, y2.

    Returns:
        (N, M) float32 IoU in [0, 1] (0 where both boxes are empty).
    """
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)  # (N, M)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: (N, 4) x1, y1, x2, y2.
        scores: (N,) higher is better.
        iou_threshold: a box is dropped when its IoU with a kept, better box exceeds this.

    Returns:
        Indices of the kept boxes, best score first.
    """
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        ious = box_iou(boxes[i : i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)
