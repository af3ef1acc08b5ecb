"""A table-driven corpus of bad and awkward videos, generated here with PyAV, through `harness.stages.preprocess`.

Every case is one file in one dataset-wide run (faces at SCRFD 160 px with stride 2, audio on): the run must not
stop at any of them. A case either processes, with the facts it must have (frames, crops, audio mask, notes), or
fails alone with an error that names the file, says why, and says what to do. Faces come from the GRID clip so
the detector has something to find.
"""

from __future__ import annotations

import json
import re
import shutil
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from core.errors import HarnessError
from harness.cli import main
from harness.folders.cache import SUMMARY
from harness.stages.preprocess import PreprocessConfig, VideoResult, preprocess
from harness.stages.preprocess_jobs import safe_name
from preprocessing.cache import FeatureCache
from preprocessing.crops import CROPS_DIR
from preprocessing.video import probe
from tests._video import FPS, grid_frames, mux_audio, write_video
from tests._weights import require_scrfd

CFG = PreprocessConfig(stride=2, input_size=160)
AUDIO_KEYS = ["mfcc", "egemaps", "audio_mask"]


# -- media generation ---------------------------------------------------------------------------------------------
def write_audio_only(path: Path, seconds: float = 0.5) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        mux_audio(out, out.add_stream("aac", rate=16000, layout="mono"), np.zeros(int(seconds * 16000), np.float32))
    return path


def write_zero_frames(path: Path) -> Path:
    """A video stream that holds no frame (audio packets make the muxer write the file)."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        aus = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        af = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        af.sample_rate = 8000
        for pkt in [*aus.encode(af), *aus.encode(), *vs.encode()]:
            out.mux(pkt)
    return path


# -- the table ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One file of the corpus.

    Args:
        file: its name in the input folder.
        make: writes it, given the path and 24 GRID frames.
        check: asserts on its VideoResult and the output folder (processed cases).
        error: regexes the error must match, in order: the reason, then what to do (failing cases).
    """

    file: str
    make: Callable[[Path, list[np.ndarray]], object]
    check: Callable[[VideoResult, Path], None] | None = None
    error: tuple[str, ...] = ()


def _features(out: Path, name: str) -> dict[str, np.ndarray]:
    return FeatureCache(out / "features").load(name, AUDIO_KEYS)


def _crops(out: Path, name: str) -> list[Path]:
    return sorted((out / CROPS_DIR / name).glob("*.jpg"))


def _has_note(res: VideoResult, *words: str) -> str:
    hits = [n for n in res.notes if all(w in n for w in words)]
    assert hits, f"no note with {words} in {res.notes}"
    return hits[0]


def _consistent(res: VideoResult, out: Path, frames: int, faces: int | None = None) -> dict[str, np.ndarray]:
    """Crops and every feature have one entry per decoded frame."""
    assert res.error is None, res.error
    assert res.frames == frames
    feats = _features(out, res.video)
    assert {k: v.shape[0] for k, v in feats.items()} == dict.fromkeys(AUDIO_KEYS, frames)
    assert all(np.isfinite(v).all() for v in feats.values())
    crops = _crops(out, res.video)
    assert len(crops) == res.with_face == (frames if faces is None else faces)
    assert res.with_face + res.without_face == frames
    return feats


def _make_truncated(path: Path, fr: list[np.ndarray]) -> None:
    whole = write_video(path.with_suffix(".whole.mp4"), fr, audio_s=len(fr) / FPS, faststart=True).read_bytes()
    path.with_suffix(".whole.mp4").unlink()
    path.write_bytes(whole[: len(whole) // 2])


def _check_truncated(res: VideoResult, out: Path) -> None:
    assert 6 <= res.frames < 24  # the decodable part, not the header's 24
    feats = _consistent(res, out, res.frames)
    assert feats["audio_mask"][: res.frames // 2].all()  # what audio there is before the cut is used
    _has_note(res, f"holds {res.frames} of the 24 frames", "truncated")
    _has_note(res, f"decoded {res.frames} of ~24 frames")


def _make_moovless(path: Path, fr: list[np.ndarray]) -> None:
    whole = write_video(path.with_suffix(".whole.mp4"), fr, audio_s=len(fr) / FPS).read_bytes()  # index at the end
    path.with_suffix(".whole.mp4").unlink()
    path.write_bytes(whole[: len(whole) // 2])


def _make_corrupt(path: Path, fr: list[np.ndarray]) -> None:
    whole = write_video(path.with_suffix(".whole.mp4"), fr, audio_s=len(fr) / FPS, faststart=True)
    data = bytearray(whole.read_bytes())
    whole.unlink()
    mid = len(data) // 2
    data[mid : mid + 3000] = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def _check_corrupt(res: VideoResult, out: Path) -> None:
    assert 12 <= res.frames <= 24
    _consistent(res, out, res.frames)
    note = _has_note(res, "damaged packet(s) skipped", "first at")
    assert f"decoded {res.frames} of ~24 frames" in note


def _check_no_audio(res: VideoResult, out: Path) -> None:
    feats = _consistent(res, out, 24)
    assert not res.has_audio and not feats["audio_mask"].any()
    assert not feats["mfcc"].any() and not feats["egemaps"].any()
    _has_note(res, "no audio track", "zero", "audio_mask is False")


def _check_short_audio(res: VideoResult, out: Path) -> None:
    feats = _consistent(res, out, 24)
    mask = feats["audio_mask"]
    k = int(mask.sum())
    assert mask[:k].all() and not mask[k:].any()  # a prefix: the audio covers the start, the tail is masked
    assert abs(k - 0.5 * FPS) <= 2  # 0.5 s of audio (+ AAC padding) at 25 fps
    assert feats["mfcc"][0].any()
    _has_note(res, "shorter than the video", f"last {24 - k} frame(s) have no audio")


def _check_long_audio(res: VideoResult, out: Path) -> None:
    feats = _consistent(res, out, 24)
    assert feats["audio_mask"].all()
    _has_note(res, "longer than the video", "not used")


def _make_vfr(path: Path, fr: list[np.ndarray]) -> None:
    write_video(path, fr[:12], pts_ms=[0, 40, 80, 160, 200, 213, 226, 300, 340, 400, 440, 480])  # 13-80 ms steps


def _check_vfr(res: VideoResult, out: Path) -> None:
    _consistent(res, out, 12)
    assert res.fps == pytest.approx(12 / 0.52, rel=1e-3)  # the container's average rate
    _has_note(res, "variable frame rate", "13-80 ms")


def _make_rotated(path: Path, fr: list[np.ndarray]) -> None:
    """Stored turned 90 degrees clockwise, with display metadata that turns it back: players show it upright."""
    write_video(path, [np.ascontiguousarray(np.rot90(f, -1)) for f in fr[:12]], rotation=90)


def _check_rotated(res: VideoResult, out: Path) -> None:
    _consistent(res, out, 12)
    _has_note(res, "rotation 90")
    # Crops of the upright frames: the same as the crops of the same frames stored upright ("good").
    rotated = [np.asarray(Image.open(p), np.float32) for p in _crops(out, res.video)]
    upright = [np.asarray(Image.open(p), np.float32) for p in _crops(out, "good")[:12]]
    diff = np.mean([np.abs(a - b).mean() for a, b in zip(rotated, upright, strict=True)])
    sideways = np.mean([np.abs(np.rot90(a) - b).mean() for a, b in zip(rotated, upright, strict=True)])
    assert diff < 8 < sideways, (diff, sideways)


def _make_huge(path: Path, fr: list[np.ndarray]) -> None:
    write_video(path, grid_frames(3, size=(3840, 2160)), audio_s=3 / FPS)


def _check_huge(res: VideoResult, out: Path) -> None:
    _consistent(res, out, 3)
    assert Image.open(_crops(out, res.video)[0]).size == (224, 224)


def _check_good(res: VideoResult, out: Path) -> None:
    feats = _consistent(res, out, 24)
    assert feats["audio_mask"].all() and res.notes == []


UNICODE_FILE = "vidéo d'essai ü.mp4"


def _check_unicode(res: VideoResult, out: Path) -> None:
    _consistent(res, out, 24)
    assert res.video == safe_name(Path(UNICODE_FILE).stem) and res.video.startswith("video_d_essai_u-")
    assert UNICODE_FILE in _has_note(res, "outputs are named")


CASES = [
    Case("good.mp4", lambda p, fr: write_video(p, fr, audio_s=24 / FPS), _check_good),
    Case("not_a_video.mp4", lambda p, fr: p.write_text("this is a text file\n" * 40),
         error=(r"not a video or audio file that FFmpeg can read", r"check it with `ffprobe`, or re-encode it")),
    Case("empty.mp4", lambda p, fr: p.write_bytes(b""),
         error=(r"empty file \(0 bytes\)", r"copy or download the file again")),
    Case("truncated.mp4", _make_truncated, _check_truncated),
    Case("truncated_no_index.mp4", _make_moovless,
         error=(r"truncated MP4 .*'moov' box\) is missing", r"copy or download the file again")),
    Case("corrupt.mp4", _make_corrupt, _check_corrupt),
    Case("zero_frames.mkv", lambda p, fr: write_zero_frames(p),
         error=(r"the video stream has no decodable frame", r"copy or download it again, or re-encode it")),
    Case("audio_only.mp4", lambda p, fr: write_audio_only(p),
         error=(r"no video stream in the file \(streams: audio \(aac\)\)", r"give the original video file")),
    Case("no_audio.mp4", lambda p, fr: write_video(p, fr), _check_no_audio),
    Case("short_audio.mp4", lambda p, fr: write_video(p, fr, audio_s=0.5), _check_short_audio),
    Case("long_audio.mp4", lambda p, fr: write_video(p, fr, audio_s=2.0), _check_long_audio),
    Case("vfr.mp4", _make_vfr, _check_vfr),
    Case("rotated.mp4", _make_rotated, _check_rotated),
    Case("huge_4k.mp4", _make_huge, _check_huge),
    Case(UNICODE_FILE, lambda p, fr: write_video(p, fr, audio_s=24 / FPS), _check_unicode),
]
BAD = [c for c in CASES if c.error]


def _needs_scrfd() -> None:
    require_scrfd()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("bad videos")  # a space in every path, too
    frames = grid_frames(24)
    for case in CASES:
        case.make(src / case.file, frames)
    return src


@pytest.fixture(scope="module")
def run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, VideoResult], Path]:
    """One dataset-wide run over the whole corpus: it must finish despite the bad files."""
    _needs_scrfd()
    out = tmp_path_factory.mktemp("out")
    results = preprocess(corpus, out, CFG)
    return {r.video: r for r in results}, out


@pytest.mark.parametrize("case", CASES, ids=[c.file for c in CASES])
def test_case(case: Case, run: tuple[dict[str, VideoResult], Path], corpus: Path) -> None:
    results, out = run
    res = results[safe_name(Path(case.file).stem)]
    if case.error:
        assert res.error is not None, f"{case.file} should fail"
        assert res.error.startswith(f"{corpus / case.file}: "), res.error  # the file, in full
        pos = 0
        for pattern in case.error:  # the reason, then what to do
            m = re.compile(pattern).search(res.error, pos)
            assert m, f"{pattern!r} not in {res.error!r}"
            pos = m.end()
        assert not (out / CROPS_DIR / res.video).exists() or not _crops(out, res.video)
    else:
        assert case.check is not None
        case.check(res, out)


def test_one_run_reports_every_bad_video_and_finishes_the_rest(run: tuple[dict[str, VideoResult], Path]) -> None:
    results, out = run
    assert len(results) == len(CASES)
    summary = json.loads((out / SUMMARY).read_text(encoding="utf-8"))
    bad = sorted(safe_name(Path(c.file).stem) for c in BAD)
    assert sorted(summary["failed"]) == bad
    by_name = {v["video"]: v for v in summary["videos"]}
    for name in bad:
        assert by_name[name]["error"] == results[name].error
    done = [r for r in results.values() if r.error is None]
    assert len(done) == len(CASES) - len(BAD)
    assert all(FeatureCache(out / "features").has(r.video, "audio_mask", _hash_of(out, r.video)) for r in done)
    assert "truncated" in " ".join(by_name["truncated"]["notes"])  # notes reach the summary too
    assert not list(out.rglob("*.tmp"))


def _hash_of(out: Path, video: str) -> str:
    return FeatureCache(out / "features").manifest(video)["features"]["audio_mask"]["config_hash"]


def test_rerun_redoes_nothing_and_keeps_the_errors(corpus: Path, run: tuple[dict[str, VideoResult], Path]) -> None:
    results, out = run
    again = {r.video: r for r in preprocess(corpus, out, CFG)}
    assert again, "the loop below checks nothing"
    for name, res in again.items():
        if results[name].error:
            assert res.error == results[name].error
        else:
            assert (res.faces, res.audio, res.frames) == ("cached", "cached", results[name].frames), name


def test_strict_stops_at_the_first_bad_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    frames = grid_frames(6)
    write_video(src / "a_good.mp4", frames, audio_s=6 / FPS)
    (src / "b_bad.mp4").write_text("not a video")
    write_video(src / "c_good.mp4", frames, audio_s=6 / FPS)
    out = tmp_path / "out"
    assert main(["preprocess", str(src), "--out", str(out), "--no-faces", "--strict"]) == 2
    err = "".join(capsys.readouterr().err.split())  # rich wraps long lines (and long paths)
    assert "b_bad.mp4:error:notavideo" in err and "re-encodeit" in err
    cache = FeatureCache(out / "features")
    assert cache.videos() == ["a_good"]  # done before the bad one; nothing after it
    # Without --strict the same folder finishes, with exit status 1 and the bad one listed.
    assert main(["preprocess", str(src), "--out", str(out), "--no-faces"]) == 1
    assert cache.videos() == ["a_good", "c_good"]
    assert json.loads((out / SUMMARY).read_text())["failed"] == ["b_bad"]


def test_strict_raises_the_videos_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write_audio_only(src / "voice.mp4")
    with pytest.raises(HarnessError, match=r"voice\.mp4: no video stream"):
        preprocess(src, tmp_path / "out", PreprocessConfig(faces=False), strict=True)


def test_decoded_frames_are_not_kept(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory is bounded: at most 2 x stride decoded frames are alive at once, whatever the video's length and
    resolution (a 4K RGB frame is 25 MB)."""
    _needs_scrfd()
    import preprocessing.crops as crops_mod

    real = crops_mod.iter_frames
    alive: dict[str, int] = {}

    def counting(path: Path, *args: object, **kwargs: object):
        refs: list[weakref.ref] = []
        for index, image in real(path, *args, **kwargs):
            refs = [r for r in refs if r() is not None]
            refs.append(weakref.ref(image))
            alive[Path(path).name] = max(alive.get(Path(path).name, 0), len(refs))
            yield index, image

    monkeypatch.setattr(crops_mod, "iter_frames", counting)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("huge_4k.mp4", "good.mp4"):
        shutil.copy(corpus / name, src / name)
    stride = 2
    # isolate=False: the patched iter_frames lives in this process, not in the decoding child.
    results = preprocess(src, tmp_path / "out", PreprocessConfig(stride=stride, input_size=160, audio=False),
                         isolate=False)  # fmt: skip
    assert [(r.video, r.with_face) for r in results] == [("good", 24), ("huge_4k", 3)]
    assert alive["good.mp4"] <= 2 * stride < 24
    assert alive["huge_4k.mp4"] <= 2 * stride
    assert probe(src / "huge_4k.mp4").display_size == (3840, 2160)


def test_an_unexpected_failure_stays_with_its_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug or an odd file that raises something other than a HarnessError: reported, and the run goes on."""
    import harness.stages.preprocess_video as pre

    src = tmp_path / "src"
    src.mkdir()
    frames = grid_frames(6)
    for name in ("a", "b", "c"):
        write_video(src / f"{name}.mp4", frames, audio_s=6 / FPS)
    real_audio, real_read = pre.compute_audio_features, pre.read_audio

    def flaky_features(samples: np.ndarray, n: int, *args: object, **kwargs: object) -> dict[str, np.ndarray]:
        if flaky_features.calls == 1:  # the second video
            flaky_features.calls += 1
            raise ZeroDivisionError("division by zero")
        flaky_features.calls += 1
        return real_audio(samples, n, *args, **kwargs)

    flaky_features.calls = 0

    def unusable_audio(path: Path, *args: object, **kwargs: object) -> np.ndarray | None:
        if Path(path).stem == "c":
            raise pre.VideoError(path, "the audio stream has no decodable sample")
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(pre, "compute_audio_features", flaky_features)
    monkeypatch.setattr(pre, "read_audio", unusable_audio)
    out = tmp_path / "out"
    a, b, c = preprocess(src, out, PreprocessConfig(faces=False), isolate=False)  # the patches live in this process
    assert a.error is None and c.error is None
    assert b.error is not None and b.error.startswith(f"{src / 'b.mp4'}: unexpected ZeroDivisionError")
    assert "--strict for the traceback" in b.error
    # An audio track of which nothing decodes: the video is still used, its audio masked.
    _has_note(c, "audio track unusable", "no decodable sample", "zero and masked")
    assert not _features(out, "c")["audio_mask"].any() and _features(out, "a")["audio_mask"].all()
    flaky_features.calls = 0
    with pytest.raises(ZeroDivisionError):
        preprocess(src, tmp_path / "strict", PreprocessConfig(faces=False), strict=True, isolate=False)
