"""Writing the corpus in Aff-Wild2's layout (the layout `preprocessing.affwild2` reads).

    videos/batch1/<video>.mp4                                H.264 + AAC (16 kHz mono); one video has no audio track
    cropped_aligned/<name>/00001.jpg                          224x224 aligned crops; no file where no face is shown
                                                              (a video's crop folder appears at once, by rename)
    annotations/VA_Estimation_Challenge/Train_Set/<name>.txt  header `valence,arousal`, -5 = unannotated
    annotations/VA_Estimation_Challenge/Validation_Set/<name>.txt
    annotations/EXPR_Classification_Challenge/Train_Set/<name>.txt   expression classes 0-7, -1 = unannotated
    annotations/EXPR_Classification_Challenge/Validation_Set/<name>.txt  (Train and Validation videos only)
    VA_test_set_release.txt                                   test names, one per line
    VA_test_set_sample.txt                                    `image_location,valence,arousal`, every test frame
    organiser/VA_Estimation_Challenge/Test_Set/<name>.txt     test labels, kept apart as the organisers do
    NOTICE.md                                                 the GRID licence notice (CC BY 4.0)
    corpus_manifest.json                                      written last: its presence marks a complete corpus

Every file goes through `core.atomic` (temporary file, fsync, rename), the mp4 included; crop folders
are published by one rename each (see `CropWriter`).
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np
from PIL import Image

from core.atomic import atomic_open, atomic_write_bytes, atomic_write_text
from preprocessing.affwild2 import (
    CROPS_DIR,
    EXPR_TRAIN_DIR,
    EXPR_VALIDATION_DIR,
    SAMPLE_FILE,
    TEST_LABELS_DIR,
    TEST_LIST_FILE,
    TRAIN_DIR,
    VALIDATION_DIR,
)
from submissions.formats import SUBMISSION_HEADER, image_location, write_annotation, write_expr_annotation

VIDEOS_DIR = Path("videos") / "batch1"
NOTICE_FILE = "NOTICE.md"
JPEG_QUALITY = 90
LABEL_DIRS = {"Train": TRAIN_DIR, "Validation": VALIDATION_DIR, "Test": TEST_LABELS_DIR}
EXPR_DIRS = {"Train": EXPR_TRAIN_DIR, "Validation": EXPR_VALIDATION_DIR}
"""Expression labels exist for the Train and Validation videos (the challenge releases no test labels)."""


def video_path(root: Path, name: str) -> Path:
    """Where the raw video `name` lives."""
    return Path(root) / VIDEOS_DIR / f"{name}.mp4"


def label_path(root: Path, split: str, name: str) -> Path:
    """Where the labels of annotation name `name` in `split` live (test labels under organiser/)."""
    return Path(root) / LABEL_DIRS[split] / f"{name}.txt"


def crop_dir(root: Path, name: str) -> Path:
    """The folder of aligned crops of annotation name `name`."""
    return Path(root) / CROPS_DIR / name


class Mp4Writer:
    """H.264 video (+ AAC audio when given) written atomically as frames arrive.

    Audio is interleaved with the video: after frame t, the samples up to (t + 1) / fps seconds are encoded.
    Encoders run single-threaded with bit-exact flags so that the same frames give the same bytes.

    Args:
        path: the .mp4 to write.
        width: frame width (even).
        height: frame height (even).
        fps: frame rate.
        audio: (S,) float32 mono samples in [-1, 1], or None for a video without an audio track.
        sample_rate: audio sample rate.
    """

    def __init__(
        self, path: Path, width: int, height: int, fps: int, audio: np.ndarray | None, sample_rate: int
    ) -> None:
        self.path = Path(path)
        self.width, self.height, self.fps = width, height, fps
        self.audio = None if audio is None else np.asarray(audio, dtype=np.float32)
        self.sample_rate = sample_rate
        self._cursor = 0
        self._frames = 0

    def __enter__(self) -> Mp4Writer:
        import av
        from av.codec.context import Flags

        self._ctx = atomic_open(self.path, "wb")
        fh = self._ctx.__enter__()
        self._container = av.open(fh, mode="w", format="mp4", options={"fflags": "+bitexact"})
        vs = self._container.add_stream("libx264", rate=self.fps)
        vs.width, vs.height, vs.pix_fmt = self.width, self.height, "yuv420p"
        vs.options = {"preset": "superfast", "crf": "20", "threads": "1"}
        vs.codec_context.flags |= int(Flags.bitexact)
        self._video = vs
        self._audio_stream = None
        if self.audio is not None:
            aus = self._container.add_stream("aac", rate=self.sample_rate)
            aus.layout = "mono"
            aus.bit_rate = 48000
            aus.codec_context.flags |= int(Flags.bitexact)
            self._audio_stream = aus
        return self

    def _push_audio(self, upto: int) -> None:
        import av

        if self._audio_stream is None or upto <= self._cursor:
            return
        chunk = self.audio[self._cursor : upto]
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self._cursor
        for packet in self._audio_stream.encode(frame):
            self._container.mux(packet)
        self._cursor = upto

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        import av

        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self._frames
        for packet in self._video.encode(vf):
            self._container.mux(packet)
        self._frames += 1
        if self.audio is not None:
            self._push_audio(min(self.audio.shape[0], round(self._frames * self.sample_rate / self.fps)))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                if self.audio is not None:
                    self._push_audio(self.audio.shape[0])
                    for packet in self._audio_stream.encode(None):
                        self._container.mux(packet)
                for packet in self._video.encode(None):
                    self._container.mux(packet)
            self._container.close()
        finally:
            self._ctx.__exit__(exc_type, exc, tb)


def encode_jpeg(image: np.ndarray) -> bytes:
    """JPEG bytes of an RGB uint8 image (quality 90)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


class CropWriter:
    """The aligned crops of one annotation name, published all at once.

    Crops go into a hidden sibling folder (`cropped_aligned/.<name>.partial/`) and the folder is renamed onto
    `cropped_aligned/<name>/` when the block ends cleanly, so a reader sees all of a video's crops or none. This is
    the atomicity of `core.atomic` at the folder level: one fsync per crop (tens of thousands of them)
    would cost minutes on this machine's disk.

    Args:
        root: corpus root.
        name: annotation name.
    """

    def __init__(self, root: Path, name: str) -> None:
        self.final = crop_dir(root, name)
        self.partial = self.final.parent / f".{name}.partial"
        self.count = 0

    def __enter__(self) -> CropWriter:
        if self.partial.exists():
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True)
        return self

    def write(self, frame: int, crop: np.ndarray) -> None:
        """Add the crop of 1-based `frame`."""
        (self.partial / image_location(self.final.name, frame).split("/", 1)[1]).write_bytes(encode_jpeg(crop))
        self.count += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            shutil.rmtree(self.partial, ignore_errors=True)
            return
        if self.final.exists():
            shutil.rmtree(self.final)
        os.replace(self.partial, self.final)


def write_labels(root: Path, split: str, name: str, labels: np.ndarray) -> Path:
    """Write the (N, 2) labels of annotation name `name` into its split's folder."""
    return write_annotation(label_path(root, split, name), labels)


def write_expressions(root: Path, split: str, name: str, classes: np.ndarray) -> Path | None:
    """Write the (N,) expression classes of annotation name `name`; None (nothing written) for a Test video."""
    folder = EXPR_DIRS.get(split)
    if folder is None:
        return None
    return write_expr_annotation(root / folder / f"{name}.txt", classes)


def write_test_files(root: Path, frames: dict[str, int]) -> tuple[Path, Path]:
    """The test list and the organisers' sample file.

    Args:
        root: corpus root.
        frames: test annotation name -> frame count, in the order the files list them.

    Returns:
        The paths of VA_test_set_release.txt and VA_test_set_sample.txt.
    """
    names: Sequence[str] = list(frames)
    release = atomic_write_text(Path(root) / TEST_LIST_FILE, "".join(f"{n}\n" for n in names))
    with atomic_open(Path(root) / SAMPLE_FILE, "w") as fh:
        fh.write(SUBMISSION_HEADER + "\n")
        for n in names:
            fh.write("".join(f"{image_location(n, i)},0,0\n" for i in range(1, frames[n] + 1)))
    return release, Path(root) / SAMPLE_FILE


def write_notice(root: Path, notice: Path) -> Path:
    """Copy the GRID licence notice into the corpus root."""
    return atomic_write_bytes(Path(root) / NOTICE_FILE, Path(notice).read_bytes())
