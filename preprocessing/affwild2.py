"""Readers for the Aff-Wild2 folder layout of the ABAW valence-arousal challenge.

The official layout under one root (`discover` reads exactly this; nothing is guessed beyond it):

    videos/batch1/<video>.mp4|.avi, videos/batch2/...   raw videos (a flat videos/<video>.mp4 is accepted too)
    cropped_aligned/<name>/00001.jpg ...                aligned face crops, 1-based frames; frames without a face
                                                        have no file
    annotations/VA_Estimation_Challenge/Train_Set/<name>.txt        header `valence,arousal`, -5 = unannotated
    annotations/VA_Estimation_Challenge/Validation_Set/<name>.txt
    VA_test_set_release.txt                             test video names, one per line
    VA_test_set_sample.txt                              the organisers' sample prediction file
                                                        (header `image_location,valence,arousal`)
    organiser/VA_Estimation_Challenge/Test_Set/<name>.txt   test labels, when present (the demo corpus keeps them)
    annotations/EXPR_Classification_Challenge/Train_Set/<name>.txt       optional expression labels (header
    annotations/EXPR_Classification_Challenge/Validation_Set/<name>.txt  `Neutral,...,Other`, a class 0-7 per
                                                        frame, -1 = unannotated), read for label refinement

The EXPR challenge splits its videos differently from the VA challenge: a video's expression file is looked up in
both EXPR folders, whatever its VA split.

Two-person videos: one raw video `<video>.mp4` holds two annotated people, named `<video>_left` and
`<video>_right` everywhere else (crops, annotations, predictions). `raw_video_for` maps a name back to the shared
raw video; audio features are therefore the same for both people (see `preprocessing.cache`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from core.errors import HarnessError, printable, shorten
from core.safe_read import read_text
from submissions.formats import EXPR_UNANNOTATED, UNANNOTATED, read_annotation, read_expr_annotation

VIDEO_EXTENSIONS = (".mp4", ".avi")
VIDEO_BATCHES = ("batch1", "batch2")
VA_CHALLENGE = "VA_Estimation_Challenge"
TRAIN_DIR = Path("annotations") / VA_CHALLENGE / "Train_Set"
VALIDATION_DIR = Path("annotations") / VA_CHALLENGE / "Validation_Set"
TEST_LABELS_DIR = Path("organiser") / VA_CHALLENGE / "Test_Set"
EXPR_CHALLENGE = "EXPR_Classification_Challenge"
EXPR_TRAIN_DIR = Path("annotations") / EXPR_CHALLENGE / "Train_Set"
EXPR_VALIDATION_DIR = Path("annotations") / EXPR_CHALLENGE / "Validation_Set"
TEST_LIST_FILE = "VA_test_set_release.txt"
SAMPLE_FILE = "VA_test_set_sample.txt"
CROPS_DIR = "cropped_aligned"
PERSON_SUFFIXES: dict[str, Literal["left", "right"]] = {"_left": "left", "_right": "right"}

Person = Literal["left", "right"] | None


class LayoutError(HarnessError):
    """A folder that does not follow the Aff-Wild2 layout, or one that is ambiguous (duplicate names)."""


def person_of(name: str) -> Person:
    """'left' or 'right' for a two-person video name (`<video>_left`), else None."""
    for suffix, person in PERSON_SUFFIXES.items():
        if name.endswith(suffix):
            return person
    return None


def strip_person(name: str) -> str:
    """The raw video's name for a person's name: `<video>_left` -> `<video>`; other names are returned as is."""
    for suffix in PERSON_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class VideoEntry:
    """One annotated person-video of a split.

    Args:
        name: the video name used by crops, annotations and predictions (may end in `_left`/`_right`).
        raw_video: the raw video file (shared by `_left` and `_right`), None when absent.
        crops_dir: `cropped_aligned/<name>`, None when absent.
        annotation: the label file, None when absent (test set without organiser labels).
        person: 'left', 'right' or None.
        expr_annotation: the expression label file (either EXPR split), None when absent.
    """

    name: str
    raw_video: Path | None
    crops_dir: Path | None
    annotation: Path | None
    person: Person
    expr_annotation: Path | None = None


@dataclass(frozen=True)
class ReconcileReport:
    """What `reconcile_lengths` did to one label array.

    Args:
        n_labels: rows in the annotation file.
        n_frames: decoded video frames.
        padded: rows of -5 appended at the end.
        truncated: rows dropped from the end.
    """

    n_labels: int
    n_frames: int
    padded: int
    truncated: int

    @property
    def changed(self) -> bool:
        """Whether the labels were padded or truncated."""
        return bool(self.padded or self.truncated)

    def __str__(self) -> str:
        if self.padded:
            return f"{self.n_labels} labels for {self.n_frames} frames: padded {self.padded} frame(s) with -5"
        if self.truncated:
            return f"{self.n_labels} labels for {self.n_frames} frames: dropped the last {self.truncated} label(s)"
        return f"{self.n_labels} labels for {self.n_frames} frames: lengths agree"


def reconcile_lengths(labels: np.ndarray, n_frames: int) -> tuple[np.ndarray, ReconcileReport]:
    """Make a label array as long as the decoded video: pad with -5 (unannotated) or truncate at the end.

    Annotation files and decoders disagree by a frame or more on some Aff-Wild2 videos; rather than pad or cut
    silently, the caller gets a report to log.

    Args:
        labels: (N, 2) valence/arousal rows, row k = frame k + 1.
        n_frames: number of decoded frames.

    Returns:
        ((n_frames, 2) float64 labels, report).
    """
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 2 or labels.shape[1] != 2:
        raise LayoutError(f"labels must have shape (N, 2), got {labels.shape}")
    if n_frames < 0:
        raise LayoutError(f"n_frames must be >= 0, got {n_frames}")
    n = labels.shape[0]
    if n >= n_frames:
        return labels[:n_frames].copy(), ReconcileReport(n, n_frames, 0, n - n_frames)
    pad = np.full((n_frames - n, 2), UNANNOTATED)
    return np.concatenate([labels, pad]), ReconcileReport(n, n_frames, n_frames - n, 0)


def _find_raw_videos(root: Path) -> dict[str, Path]:
    videos_dir = root / "videos"
    found: dict[str, list[Path]] = {}
    if not videos_dir.is_dir():
        return {}
    for folder in (videos_dir, *(videos_dir / b for b in VIDEO_BATCHES)):
        if not folder.is_dir():
            continue
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS:
                found.setdefault(f.stem, []).append(f)
    dups = {k: v for k, v in found.items() if len(v) > 1}
    if dups:
        listed = "; ".join(f"{k}: {', '.join(str(p) for p in v)}" for k, v in sorted(dups.items())[:10])
        raise LayoutError(f"{videos_dir}: video names must be unique across batches and formats ({listed})")
    return {k: v[0] for k, v in found.items()}


def _find_expr_files(root: Path) -> dict[str, Path]:
    """Expression label files by video name, from both EXPR split folders.

    Raises:
        LayoutError: a name has a file in both folders.
    """
    found: dict[str, Path] = {}
    clashes: list[str] = []
    for folder in (root / EXPR_TRAIN_DIR, root / EXPR_VALIDATION_DIR):
        for f in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
            if f.stem in found:
                clashes.append(f"{found[f.stem]} and {f}")
            found.setdefault(f.stem, f)
    if clashes:
        raise LayoutError(f"{root}: expression labels of one video in both EXPR splits: {'; '.join(clashes[:5])}")
    return found


MAX_NAME_LIST_BYTES = 1024 * 1024
"""A video-name list (`VA_test_set_release.txt`: about 150 names of Aff-Wild2's test set, a few kB)."""

MAX_NAME_CHARS = 255
"""Longest video name in a list (a file name's limit on common filesystems)."""


def _read_name_list(path: Path) -> list[str]:
    text = read_text(path, "video-name list", MAX_NAME_LIST_BYTES)
    names = [ln.strip(" \t\r").lstrip("\ufeff").strip(" \t") for ln in text.split("\n")]
    names = [n for n in names if n]
    bad = [n for n in names if "/" in n or "\\" in n or "," in n or n.startswith(".") or len(n) > MAX_NAME_CHARS
           or not n.isprintable()]  # fmt: skip
    if bad:
        raise LayoutError(f"{printable(str(path))}: expected one video name per line, got "
                          f"{', '.join(repr(shorten(n)) for n in bad[:5])}")
    dups = sorted(n for n, count in Counter(names).items() if count > 1)
    if dups:
        raise LayoutError(f"{path}: video names listed twice: {', '.join(dups[:10])}")
    return names


def _names_from_sample(path: Path) -> list[str]:
    from submissions.formats import read_sample_frames

    # Videos in order of first appearance.
    return list(read_sample_frames(path).videos)


@dataclass(frozen=True)
class AffWild2Layout:
    """The videos of one Aff-Wild2 root, by split.

    Args:
        root: the dataset root.
        train: training videos (from the Train_Set annotation files), sorted by name.
        validation: validation videos, sorted by name.
        test: test videos, in the order of `VA_test_set_release.txt` (or of the sample file when the list is
            absent).
        sample_file: the organisers' sample prediction file, None when absent.
        test_labels_dir: the organisers' test label folder, None when absent.
        raw_videos: raw video name -> file.
    """

    root: Path
    train: list[VideoEntry]
    validation: list[VideoEntry]
    test: list[VideoEntry]
    sample_file: Path | None
    test_labels_dir: Path | None
    raw_videos: dict[str, Path] = field(repr=False)

    @classmethod
    def discover(cls, root: str | Path) -> AffWild2Layout:
        """Read the layout under `root` (see the module docstring).

        Args:
            root: the dataset root.

        Raises:
            LayoutError: no such folder, nothing of the layout found, or a video name in two places (two splits,
                two batches, listed twice).
        """
        root = Path(root)
        if not root.is_dir():
            raise LayoutError(f"{root}: Aff-Wild2 root folder not found")
        raw = _find_raw_videos(root)
        sample = root / SAMPLE_FILE
        sample_file = sample if sample.is_file() else None
        labels_dir = root / TEST_LABELS_DIR
        test_labels_dir = labels_dir if labels_dir.is_dir() else None
        expr = _find_expr_files(root)

        def entry(name: str, annotation: Path | None) -> VideoEntry:
            crops = root / CROPS_DIR / name
            return VideoEntry(
                name=name,
                raw_video=raw.get(name, raw.get(strip_person(name))),
                crops_dir=crops if crops.is_dir() else None,
                annotation=annotation,
                person=person_of(name),
                expr_annotation=expr.get(name),
            )

        splits: dict[str, list[VideoEntry]] = {}
        for split, folder in (("train", root / TRAIN_DIR), ("validation", root / VALIDATION_DIR)):
            files = sorted(folder.glob("*.txt")) if folder.is_dir() else []
            splits[split] = [entry(f.stem, f) for f in files]
        test_list = root / TEST_LIST_FILE
        if test_list.is_file():
            test_names = _read_name_list(test_list)
        elif sample_file is not None:
            test_names = _names_from_sample(sample_file)
        else:
            test_names = []
        splits["test"] = [
            entry(n, test_labels_dir / f"{n}.txt" if test_labels_dir and (test_labels_dir / f"{n}.txt").is_file()
                  else None)
            for n in test_names
        ]

        owner: dict[str, str] = {}
        clashes: list[str] = []
        for split, entries in splits.items():
            for e in entries:
                if e.name in owner:
                    clashes.append(f"{e.name} ({owner[e.name]} and {split})")
                owner.setdefault(e.name, split)
        if clashes:
            raise LayoutError(f"{root}: video names appear in more than one split: {', '.join(clashes[:10])}")
        if not owner and not raw:
            raise LayoutError(
                f"{root}: no Aff-Wild2 layout found (expected videos/, {TRAIN_DIR}, {VALIDATION_DIR} "
                f"or {TEST_LIST_FILE})"
            )
        return cls(root, splits["train"], splits["validation"], splits["test"], sample_file, test_labels_dir, raw)

    @property
    def splits(self) -> dict[str, list[VideoEntry]]:
        """{'train': ..., 'validation': ..., 'test': ...}."""
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def entry(self, name: str) -> VideoEntry:
        """The entry of a video name in any split."""
        for entries in self.splits.values():
            for e in entries:
                if e.name == name:
                    return e
        raise LayoutError(f"{self.root}: no video named {name!r} in any split")

    def raw_video_for(self, name: str) -> Path:
        """The raw video file of a name; `<video>_left`/`_right` share `<video>`'s file.

        Args:
            name: a video name from any split.
        """
        path = self.raw_videos.get(name) or self.raw_videos.get(strip_person(name))
        if path is None:
            raise LayoutError(
                f"{self.root / 'videos'}: no raw video for {name!r} (looked for {strip_person(name)}"
                f"{'|'.join(VIDEO_EXTENSIONS)} in videos/, videos/batch1, videos/batch2)"
            )
        return path

    def crop_path(self, name: str, frame_1based: int) -> Path:
        """`cropped_aligned/<name>/<frame:05d>.jpg` (the file may not exist: frames without a face have none).

        Args:
            name: a video name.
            frame_1based: frame number, 1 for the first frame.
        """
        if frame_1based < 1:
            raise LayoutError(f"frames are 1-based, got {frame_1based} for {name}")
        return self.root / CROPS_DIR / name / f"{frame_1based:05d}.jpg"

    def crop_frames(self, name: str) -> np.ndarray:
        """Sorted 1-based frame numbers that have a crop file for `name` (empty when there is no crop folder)."""
        folder = self.root / CROPS_DIR / name
        if not folder.is_dir():
            return np.zeros(0, dtype=np.int64)
        frames = [int(f.stem) for f in folder.glob("*.jpg") if f.stem.isdigit()]
        return np.array(sorted(frames), dtype=np.int64)

    def labels(self, entry: VideoEntry, n_frames: int | None = None) -> tuple[np.ndarray, ReconcileReport | None]:
        """Read an entry's labels, optionally reconciled to the decoded frame count.

        Args:
            entry: a video with an annotation file.
            n_frames: decoded frame count; None returns the file's rows as they are (and no report).
        """
        if entry.annotation is None:
            raise LayoutError(f"{self.root}: video {entry.name!r} has no annotation file")
        labels = read_annotation(entry.annotation)
        if n_frames is None:
            return labels, None
        return reconcile_lengths(labels, n_frames)

    def expressions(self, entry: VideoEntry, n_frames: int) -> np.ndarray:
        """An entry's (n_frames,) expression classes: -1 where unannotated, past the file's end or without a file.

        Args:
            entry: a video of any split.
            n_frames: the frames the classes must cover (extra rows are dropped).
        """
        return load_expressions(entry.expr_annotation, n_frames)


def load_expressions(path: Path | None, n_frames: int) -> np.ndarray:
    """(n_frames,) int64 expression classes from an EXPR file (None: every frame -1), padded with -1 or cut at the
    end to the decoded frame count, as `reconcile_lengths` does for V/A.

    Args:
        path: the expression label file, or None.
        n_frames: the frames to cover.
    """
    if n_frames < 0:
        raise LayoutError(f"n_frames must be >= 0, got {n_frames}")
    out = np.full(n_frames, EXPR_UNANNOTATED, dtype=np.int64)
    if path is None:
        return out
    classes = read_expr_annotation(path)
    k = min(n_frames, classes.shape[0])
    out[:k] = classes[:k]
    return out
