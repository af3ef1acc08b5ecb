"""Following the annotated subject through a video, detecting faces on every `stride`-th frame only.

Subject choice (Aff-Wild2 annotates one person per video, or two as `<video>_left` / `<video>_right`):
- one subject: the first detection picks the largest face; later detections pick the face with the highest IoU
  with the subject's last box (the largest face again when none overlaps, e.g. after a cut);
- two subjects: the two largest faces of each detection, named `_left` and `_right` by the x of their box centres.

Between two detections `stride` frames apart, boxes and landmarks are interpolated linearly. When the subject is
missing at either end, the frames in between are detected one by one instead, so a face that appears or leaves
mid-gap is handled as with per-frame detection; the same happens when the two boxes overlap by less than
`MIN_IOU` (a cut or a fast jump, where a straight line between them would be wrong). The last frame of a video
is always detected.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from preprocessing.faces.base import Face, FaceDetector, box_iou

SUBJECT = ""
LEFT = "_left"
RIGHT = "_right"
# Below this IoU between the faces at both ends of a gap, the gap is detected frame by frame (a cut, a jump).
MIN_IOU = 0.3


@dataclass(frozen=True)
class TrackedFrame:
    """The subject's face (or faces) in one frame.

    Args:
        index: 0-based frame index.
        image: the HxWx3 uint8 RGB frame.
        faces: slot -> face or None when absent; slots are "" for one subject, or "_left" and "_right".
        detected: True when the detector ran on this frame, False when the faces were interpolated.
    """

    index: int
    image: np.ndarray
    faces: dict[str, Face | None]
    detected: bool


def pick_subject(faces: list[Face], previous: Face | None) -> Face | None:
    """The face that continues `previous` (highest IoU), or the largest face when nothing overlaps or at the start."""
    if not faces:
        return None
    if previous is not None:
        ious = box_iou(previous.box[None], np.stack([f.box for f in faces]))[0]
        best = int(np.argmax(ious))
        if ious[best] > 0:
            return faces[best]
    return max(faces, key=lambda f: f.area)


def pick_two(faces: list[Face]) -> dict[str, Face | None]:
    """The two largest faces as {"_left": ..., "_right": ...} by box centre x; a lone face is put on its side."""
    two = sorted(sorted(faces, key=lambda f: -f.area)[:2], key=lambda f: f.center_x)
    if len(two) == 2:
        return {LEFT: two[0], RIGHT: two[1]}
    if not two:
        return {LEFT: None, RIGHT: None}
    return {LEFT: two[0], RIGHT: None}


def interpolate_face(a: Face, b: Face, t: float) -> Face:
    """Linear interpolation of box and landmarks at t in [0, 1] from `a` to `b`; the score is the lower one."""
    return Face(
        box=((1 - t) * a.box + t * b.box).astype(np.float32),
        score=min(a.score, b.score),
        landmarks=((1 - t) * a.landmarks + t * b.landmarks).astype(np.float32),
    )


class FaceTracker:
    """Detect on every `stride`-th frame and interpolate between (see the module docstring).

    Args:
        detector: any FaceDetector.
        stride: detect on frames 0, stride, 2*stride, ... and on the last frame; 1 detects every frame.
        two_person: follow the two largest faces as `_left` / `_right` instead of one subject.
    """

    def __init__(self, detector: FaceDetector, stride: int = 1, two_person: bool = False) -> None:
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.detector = detector
        self.stride = stride
        self.two_person = two_person
        self._previous: Face | None = None
        self.detector_calls = 0

    @property
    def slots(self) -> tuple[str, ...]:
        """Names of the tracked faces: ("",) or ("_left", "_right")."""
        return (LEFT, RIGHT) if self.two_person else (SUBJECT,)

    def _select(self, faces: list[Face]) -> dict[str, Face | None]:
        if self.two_person:
            return pick_two(faces)
        face = pick_subject(faces, self._previous)
        if face is not None:
            self._previous = face
        return {SUBJECT: face}

    @staticmethod
    def _continuous(a: Face | None, b: Face | None) -> bool:
        """Both ends have the face and it moved little enough to interpolate (not a cut or another person)."""
        return a is not None and b is not None and float(box_iou(a.box[None], b.box[None])[0, 0]) >= MIN_IOU

    def _faces(self, image: np.ndarray) -> list[Face]:
        self.detector_calls += 1
        return self.detector.detect(image)

    def _fill(
        self, start: TrackedFrame, gap: list[tuple[int, np.ndarray]], last: tuple[int, np.ndarray]
    ) -> list[TrackedFrame]:
        """Resolve the frames after keyframe `start` up to the next keyframe `last` (detected here)."""
        last_faces = self._faces(last[1])
        before = self._previous
        end = TrackedFrame(last[0], last[1], self._select(last_faces), True)
        if all(self._continuous(start.faces[s], end.faces[s]) for s in self.slots):
            span = end.index - start.index
            out = []
            for index, image in gap:
                t = (index - start.index) / span
                faces = {s: interpolate_face(start.faces[s], end.faces[s], t) for s in self.slots}  # type: ignore[arg-type]
                out.append(TrackedFrame(index, image, faces, False))
            return [*out, end]
        # A face is missing at one end: detect every frame of the gap in order, so that the subject choice
        # follows frame by frame, then choose the keyframe's face again after the gap's last frame.
        self._previous = before
        out = [TrackedFrame(index, image, self._select(self._faces(image)), True) for index, image in gap]
        return [*out, TrackedFrame(last[0], last[1], self._select(last_faces), True)]

    def track(self, frames: Iterable[tuple[int, np.ndarray]]) -> Iterator[TrackedFrame]:
        """Yield one TrackedFrame per input frame, in order (frames are held back by at most `stride` - 1).

        Args:
            frames: (index, HxWx3 uint8 RGB) pairs, consecutive, e.g. from `preprocessing.video.iter_frames`.
        """
        key: TrackedFrame | None = None
        gap: list[tuple[int, np.ndarray]] = []
        for index, image in frames:
            if key is None:
                key = TrackedFrame(index, image, self._select(self._faces(image)), True)
                yield key
                continue
            if index - key.index >= self.stride:
                resolved = self._fill(key, gap, (index, image))
                yield from resolved
                key, gap = resolved[-1], []
            else:
                gap.append((index, image))
        if key is not None and gap:
            # The last frame is always detected: it closes the final gap.
            yield from self._fill(key, gap[:-1], gap[-1])
