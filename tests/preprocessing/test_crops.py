"""Writing cropped_aligned/<video>/00001.jpg: counts, numbering, resumability, two subjects, faceless frames."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from preprocessing.crops import CROPS_DIR, MANIFEST, extract_crops, frame_filename
from preprocessing.faces import TEMPLATE_224, FaceDetector, get_detector
from preprocessing.video import iter_frames
from tests._weights import require_scrfd

GRID = Path(__file__).resolve().parents[2] / "preprocessing" / "assets" / "grid"


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    require_scrfd()
    return get_detector("scrfd", input_size=320)


def _write_video(path: Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w") as out:
        vs = out.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.bit_rate = 4_000_000
        for img in frames:
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
    return path


def test_frame_filename() -> None:
    assert frame_filename(0) == "00001.jpg"
    assert frame_filename(74) == "00075.jpg"
    assert frame_filename(12344) == "12345.jpg"


def test_grid_clip_gives_one_aligned_crop_per_frame(tmp_path: Path, detector: FaceDetector) -> None:
    seen: list[tuple[int, int]] = []
    report = extract_crops(
        GRID / "bbaf2n.mpg", tmp_path, detector=detector, stride=3, progress=lambda d, t: seen.append((d, t))
    )
    out = tmp_path / CROPS_DIR / "bbaf2n"
    files = sorted(p.name for p in out.glob("*.jpg"))
    assert files == [f"{i:05d}.jpg" for i in range(1, 76)]
    assert (report.frames, report.with_face, report.without_face, report.skipped) == (75, 75, 0, False)
    assert report.detector_calls == 26  # frames 0, 3, ..., 72 and the last one, 74
    assert seen[-1] == (75, 75) and len(seen) == 75
    img = np.asarray(Image.open(out / "00040.jpg"))
    assert img.shape == (224, 224, 3)
    # The crop is the face on the template: detecting again finds the eyes where the template has them.
    again = get_detector("scrfd", input_size=None).detect(img)[0]
    assert np.linalg.norm(again.landmarks[:2] - TEMPLATE_224[:2], axis=1).max() < 6.0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["with_face"] == 75 and manifest["missing"] == [] and manifest["config"]["stride"] == 3


def test_rerun_with_same_config_is_skipped_and_other_config_redone(tmp_path: Path, detector: FaceDetector) -> None:
    first = extract_crops(GRID / "lbax4n.mpg", tmp_path, video_name="clip", detector=detector, stride=5)
    out = tmp_path / CROPS_DIR / "clip"
    stamp = (out / "00010.jpg").stat().st_mtime_ns
    again = extract_crops(GRID / "lbax4n.mpg", tmp_path, video_name="clip", detector=detector, stride=5)
    assert again.skipped and again.with_face == first.with_face == 75 and again.config_hash == first.config_hash
    assert (out / "00010.jpg").stat().st_mtime_ns == stamp
    (out / "99999.jpg").write_bytes(b"stale")  # left over from an earlier configuration
    redone = extract_crops(GRID / "lbax4n.mpg", tmp_path, video_name="clip", detector=detector, stride=4)
    assert not redone.skipped and redone.config_hash != first.config_hash
    assert not (out / "99999.jpg").exists() and len(list(out.glob("*.jpg"))) == 75


def test_frames_without_a_face_get_no_file(tmp_path: Path, detector: FaceDetector) -> None:
    grid = [f for _, f in iter_frames(GRID / "bbaf2n.mpg")][:8]
    blank = np.full_like(grid[0], 90)
    frames = [*grid[:3], blank, blank, *grid[3:6]]  # frames 4 and 5 (1-based) have no face
    video = _write_video(tmp_path / "gap.mp4", frames)
    report = extract_crops(video, tmp_path / "out", detector=detector, stride=2)
    assert (report.frames, report.with_face, report.without_face) == (8, 6, 2)
    assert report.subjects[0].missing == (4, 5)
    names = sorted(p.name for p in (tmp_path / "out" / CROPS_DIR / "gap").glob("*.jpg"))
    assert names == ["00001.jpg", "00002.jpg", "00003.jpg", "00006.jpg", "00007.jpg", "00008.jpg"]


def test_two_person_video_writes_left_and_right(tmp_path: Path, detector: FaceDetector) -> None:
    a = [f for _, f in iter_frames(GRID / "bbaf2n.mpg")][:6]
    b = [f for _, f in iter_frames(GRID / "lbax4n.mpg")][:6]
    video = _write_video(tmp_path / "pair.mp4", [np.concatenate([x, y], axis=1) for x, y in zip(a, b, strict=True)])
    report = extract_crops(video, tmp_path, detector=detector, stride=2, two_person=True)
    assert [s.name for s in report.subjects] == ["pair_left", "pair_right"]
    assert report.with_face == 12 and report.without_face == 0
    left = np.asarray(Image.open(tmp_path / CROPS_DIR / "pair_left" / "00001.jpg")).astype(float)
    right = np.asarray(Image.open(tmp_path / CROPS_DIR / "pair_right" / "00001.jpg")).astype(float)
    # Each folder holds its own person: the crops of the two speakers differ clearly.
    assert np.abs(left - right).mean() > 10
    solo = extract_crops(GRID / "lbax4n.mpg", tmp_path / "solo", detector=detector, stride=2)
    assert solo.with_face == 75
    solo_first = np.asarray(Image.open(tmp_path / "solo" / CROPS_DIR / "lbax4n" / "00001.jpg")).astype(float)
    assert np.abs(right - solo_first).mean() < np.abs(left - solo_first).mean()
