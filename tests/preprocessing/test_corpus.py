"""The demo corpus end to end on the small size: layout, counts, hard cases, determinism, signal sanity."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter1d, uniform_filter1d

from core.ownership import OWNERSHIP_FILE, read_record
from preprocessing.affwild2 import AffWild2Layout
from preprocessing.corpus import (
    MANIFEST_FILE,
    CorpusError,
    CorpusManifest,
    find_corpus,
    make_corpus,
    plan_corpus,
    read_manifest,
)
from preprocessing.corpus.ceilings import ceiling_scores, modality_views
from preprocessing.corpus.grid import load_clips
from preprocessing.corpus.labels import skewness
from preprocessing.corpus.render import script_video
from preprocessing.corpus.spec import max_video_share
from preprocessing.corpus.writer import label_path
from submissions.formats import parse_location, read_annotation
from submissions.metrics import score_va
from tests._weights import require_scrfd

SPLIT_DIRS = {
    "Train": "annotations/VA_Estimation_Challenge/Train_Set",
    "Validation": "annotations/VA_Estimation_Challenge/Validation_Set",
    "Test": "organiser/VA_Estimation_Challenge/Test_Set",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CorpusManifest]:
    root = tmp_path_factory.mktemp("corpus") / "small"
    seen: list[tuple[int, int, str]] = []
    manifest = make_corpus(root, seed=0, size="small", progress=lambda d, t, w: seen.append((d, t, w)))
    assert seen and seen[-1][0] == seen[-1][1] == sum(v.frames for v in manifest.videos)
    return root, manifest


def _labels(root: Path, split: str, name: str) -> np.ndarray:
    return read_annotation(root / SPLIT_DIRS[split] / f"{name}.txt")


def _decode(path: Path) -> tuple[list[np.ndarray], np.ndarray | None]:
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return frames, None
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    return frames, audio


@pytest.fixture(scope="module")
def decoded(corpus: tuple[Path, CorpusManifest]) -> dict[str, tuple[list[np.ndarray], np.ndarray | None]]:
    root, m = corpus
    return {v.name: _decode(root / "videos" / "batch1" / f"{v.name}.mp4") for v in m.videos}


def test_layout_is_affwild2s(corpus: tuple[Path, CorpusManifest]) -> None:
    root, m = corpus
    top = {p.name for p in root.iterdir()}
    assert top == {
        "videos",
        "cropped_aligned",
        "annotations",
        "organiser",
        "VA_test_set_release.txt",
        "VA_test_set_sample.txt",
        "NOTICE.md",
        MANIFEST_FILE,
        OWNERSHIP_FILE,  # the harness's record of what it wrote (core.ownership), hidden
    }
    assert "GRID" in (root / "NOTICE.md").read_text() and "CC BY 4.0" in (root / "NOTICE.md").read_text()
    assert sorted(p.name for p in (root / "videos" / "batch1").iterdir()) == sorted(f"{v.name}.mp4" for v in m.videos)
    for split, folder in SPLIT_DIRS.items():
        assert sorted(p.stem for p in (root / folder).iterdir()) == sorted(m.names(split))
    assert sorted(p.name for p in (root / "cropped_aligned").iterdir()) == sorted(m.names())
    assert (root / "VA_test_set_release.txt").read_text().split() == sorted(m.names("Test"))
    # The reader of the real dataset finds exactly this corpus.
    layout = AffWild2Layout.discover(root)
    assert [e.name for e in layout.train] == sorted(m.names("Train"))
    assert [e.name for e in layout.validation] == sorted(m.names("Validation"))
    assert [e.name for e in layout.test] == sorted(m.names("Test"))
    assert all(e.raw_video is not None and e.crops_dir is not None and e.annotation is not None for e in layout.test)
    # No temporary or marker files left; the one hidden file is the harness's ownership record.
    assert [p.name for p in root.rglob("*") if p.name.startswith(".")] == [OWNERSHIP_FILE]


def test_counts_agree_everywhere(corpus: tuple[Path, CorpusManifest], decoded) -> None:
    root, m = corpus
    assert m.videos, "the loop below checks nothing"
    for v in m.videos:
        frames, _ = decoded[v.name]
        assert len(frames) == v.frames
        assert frames[0].shape == (v.height, v.width, 3)
        for p in v.persons:
            text = (root / SPLIT_DIRS[v.split] / f"{p.name}.txt").read_text().splitlines()
            assert text[0] == "valence,arousal"
            assert len(text) - 1 == v.frames
            crops = sorted(int(f.stem) for f in (root / "cropped_aligned" / p.name).glob("*.jpg"))
            assert len(crops) == p.crops and p.crops + p.missing_faces == v.frames
            assert crops[0] >= 1 and crops[-1] <= v.frames
    with Image.open(next((root / "cropped_aligned").rglob("*.jpg"))) as im:
        assert im.size == (224, 224) and im.mode == "RGB"
    # The sample file: every frame of every test name, name by name, frames 1..N, in the release list's order.
    rows = (root / "VA_test_set_sample.txt").read_text().splitlines()
    assert rows[0] == "image_location,valence,arousal"
    expected = [f"{n}/{i:05d}.jpg,0,0" for n in sorted(m.names("Test")) for i in range(1, m.frames_of(n) + 1)]
    assert rows[1:] == expected
    assert parse_location(rows[1].split(",")[0]) == (sorted(m.names("Test"))[0], 1)


def test_every_hard_case_is_there(corpus: tuple[Path, CorpusManifest], decoded) -> None:
    root, m = corpus
    by_split = {s: [v for v in m.videos if v.split == s] for s in SPLIT_DIRS}
    assert by_split, "the loop below checks nothing"
    for split, vids in by_split.items():
        labels = [_labels(root, split, p.name) for v in vids for p in v.persons]
        assert any((lab == -5).all(axis=1).any() for lab in labels), f"{split}: no -5 stretch"
        assert any(p.missing_faces for v in vids for p in v.persons), f"{split}: no missing faces"
    two = [v for v in m.videos if v.two_person]
    assert {v.split for v in two} == {"Train", "Test"}
    for v in two:
        assert [p.name for p in v.persons] == [f"{v.name}_left", f"{v.name}_right"]
        assert v.persons[0].subject != v.persons[1].subject
    silent = [v for v in m.videos if v.audio == "absent"]
    assert len(silent) == 1 and decoded[silent[0].name][1] is None
    assert all(decoded[v.name][1] is not None for v in m.videos if v.audio == "present")
    # Silent stretches are quiet in the decoded track, speech elsewhere is not.
    v = next(v for v in m.videos if v.silent and v.audio == "present")
    audio = decoded[v.name][1]
    hop = m.sample_rate // v.fps
    s, e = v.silent[0]
    quiet = np.sqrt(np.mean(audio[(s + 2) * hop : (e - 2) * hop] ** 2))
    loud = np.sqrt(np.mean(audio[: v.frames * hop] ** 2))
    assert 20 * np.log10(loud / quiet) > 6
    # Where the manifest says the face is gone (out of the picture or fully hidden), there is no crop.
    for v in m.videos:
        for p in v.persons:
            gone = [(s, e) for s, e in p.no_face] + [(s, e) for s, e, kind in p.occluded if kind == "whole"]
            for s, e in gone:
                assert not any((root / "cropped_aligned" / p.name / f"{f + 1:05d}.jpg").exists() for f in range(s, e))
    subjects = {split: {p.subject for v in vids for p in v.persons} for split, vids in by_split.items()}
    assert not (subjects["Train"] & subjects["Validation"] or subjects["Train"] & subjects["Test"])


def test_labels_are_positively_skewed(corpus: tuple[Path, CorpusManifest]) -> None:
    root, m = corpus
    lab = np.concatenate([_labels(root, v.split, p.name) for v in m.videos for p in v.persons])
    lab = lab[(lab != -5).all(axis=1)]
    assert np.all(np.abs(lab) <= 1)
    assert lab.mean(axis=0).min() > 0
    assert (lab > 0).mean() > 0.55
    assert skewness(lab[:, 0]) < 0.3  # few short videos: only a loose check here (the pooled test is strict)


def test_manifest_oracle_is_what_it_claims(corpus: tuple[Path, CorpusManifest]) -> None:
    root, m = corpus
    assert read_manifest(root) == m
    assert CorpusManifest.from_dict(m.to_dict()) == m
    # Re-derive the clean latent from the seed (pure, no rendering) and score the label files against it.
    clips = load_clips()
    labels, clean = {s: [] for s in SPLIT_DIRS}, {s: [] for s in SPLIT_DIRS}
    per_video = []
    plan = plan_corpus(m.seed, m.size, len(clips))
    assert plan, "the loop below checks nothing"
    for spec in plan:
        script = script_video(spec, clips)
        per_video.append(
            (
                spec.split,
                {tr.name: tr.labels for tr in script.persons},
                modality_views(script),
                {tr.name: tr.clean for tr in script.persons},
            )
        )
        for tr in script.persons:
            written = read_annotation(label_path(root, spec.split, tr.name))
            assert np.array_equal(written, tr.labels)
            labels[spec.split].append(written)
            clean[spec.split].append(tr.clean)
    for split in SPLIT_DIRS:
        s = score_va(np.concatenate(labels[split]), np.concatenate(clean[split]))
        assert m.oracle[split].p_va == pytest.approx(s.p_va, abs=1e-6)
        assert m.oracle[split].frames == s.frames
    assert 0.5 < m.oracle["all"].p_va < 1.0
    assert "clean latent" in m.oracle_meaning
    # The modality ceilings are what the ideal readers of the scripts score, for every split and "all".
    ceilings = ceiling_scores(per_video)
    assert m.oracle_visual == ceilings["visual"] and m.oracle_audio == ceilings["audio"]
    assert set(m.oracle_visual) == set(m.oracle_audio) == set(m.oracle) == {*SPLIT_DIRS, "all"}
    for split in m.oracle:
        assert m.oracle_visual[split].frames == m.oracle_audio[split].frames == m.oracle[split].frames
        assert 0.0 < m.oracle_audio[split].p_va < 1.0 and 0.0 < m.oracle_visual[split].p_va < 1.0
    assert "oracle_visual" in m.oracle_meaning and "whose voice" in m.oracle_meaning
    # A manifest written before the ceilings existed still reads, with none.
    old = {k: v for k, v in m.to_dict().items() if k not in ("oracle_visual", "oracle_audio")}
    assert CorpusManifest.from_dict(old).oracle_audio == {} and CorpusManifest.from_dict(old).oracle == m.oracle
    assert m.max_video_share() == max_video_share(plan)
    summary = m.summary()
    assert summary["all"]["two_person"] == 2 and summary["all"]["no_audio"] == 1
    assert summary["all"]["unannotated"] > 0 and summary["all"]["missing_faces"] > 0


def test_same_seed_gives_identical_files(corpus: tuple[Path, CorpusManifest], tmp_path: Path) -> None:
    root, m = corpus
    again = make_corpus(tmp_path / "again", seed=0, size="small", workers=2)  # other process layout, same bytes
    assert again == m
    # The ownership record holds modification times: the same entries, not the same bytes.
    assert read_record(root).keys() == read_record(tmp_path / "again").keys()
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.name != OWNERSHIP_FILE)
    assert files == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*")
                           if p.is_file() and p.name != OWNERSHIP_FILE)  # fmt: skip
    for rel in files:
        assert (root / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes(), rel


def test_another_seed_gives_another_corpus() -> None:
    clips = load_clips()
    a, b = plan_corpus(0, "small", len(clips)), plan_corpus(1, "small", len(clips))
    assert a != b
    la = script_video(a[0], clips).persons[0].labels
    lb = script_video(b[0], clips).persons[0].labels
    assert la.shape != lb.shape or not np.array_equal(la, lb)


def test_reuse_and_refusal(corpus: tuple[Path, CorpusManifest], tmp_path: Path) -> None:
    root, m = corpus
    stamp = os.stat(root / MANIFEST_FILE).st_mtime_ns
    assert make_corpus(root, seed=0, size="small") == m
    assert os.stat(root / MANIFEST_FILE).st_mtime_ns == stamp  # reused, not rewritten
    assert find_corpus(root, seed=1, size="small") is None
    assert find_corpus(root, seed=0, size="medium") is None
    crop = next((root / "cropped_aligned").rglob("*.jpg"))
    data = crop.read_bytes()
    crop.unlink()
    try:
        assert find_corpus(root, seed=0, size="small") is None  # incomplete: would be rebuilt
    finally:
        crop.write_bytes(data)
    assert find_corpus(root, seed=0, size="small") == m
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(CorpusError, match="not empty"):
        make_corpus(foreign, seed=0, size="small")
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_detector_finds_the_faces_that_are_shown(corpus: tuple[Path, CorpusManifest], decoded) -> None:
    from preprocessing.faces import get_detector

    require_scrfd()
    detector = get_detector("scrfd")
    root, m = corpus
    found = checked = 0
    for v in m.videos:
        frames, _ = decoded[v.name]
        for k, p in enumerate(v.persons):
            shown = sorted(int(f.stem) for f in (root / "cropped_aligned" / p.name).glob("*.jpg"))
            for i in shown[::10]:
                faces = detector.detect(frames[i - 1])
                if v.two_person:  # the person's own half of the frame
                    faces = [f for f in faces if (f.center_x < v.width / 2) == (k == 0)]
                checked += 1
                found += bool(faces)
    assert checked > 80
    assert found / checked >= 0.9, f"detector found {found} of {checked} shown faces"


def test_arousal_is_audible(corpus: tuple[Path, CorpusManifest], decoded) -> None:
    root, m = corpus
    loud, arousal = [], []
    for v in m.videos:
        audio = decoded[v.name][1]
        if audio is None or v.two_person:
            continue
        hop = m.sample_rate // v.fps
        power = (audio[: v.frames * hop].reshape(v.frames, hop) ** 2).mean(axis=1)  # (N,)
        db = 10 * np.log10(uniform_filter1d(power, 15) + 1e-10)  # loudness over 0.6 s
        lab = _labels(root, v.split, v.persons[0].name)
        speech = (db > np.percentile(db, 30)) & (lab[:, 1] != -5)  # drop pauses and silent stretches
        loud.append(db[speech])
        arousal.append(lab[speech, 1])
    r = np.corrcoef(np.concatenate(loud), np.concatenate(arousal))[0, 1]
    assert r > 0.3, r


def _mouth_curvature(crop: np.ndarray) -> float:
    """Rows of the darkest lip line at the mouth's centre minus at its corners, in an aligned 224 crop."""
    band = crop.mean(axis=2)[160:210]

    def lip_row(x0: int, x1: int) -> float:
        return float(np.argmin(gaussian_filter1d(band[:, x0:x1].mean(axis=1), 1.5)))

    return lip_row(106, 118) - 0.5 * (lip_row(88, 96) + lip_row(128, 136))


def test_valence_is_visible_at_the_mouth_corners(corpus: tuple[Path, CorpusManifest]) -> None:
    root, m = corpus
    curv, valence = [], []
    for v in m.videos:
        for p in v.persons:
            lab = _labels(root, v.split, p.name)
            hidden = np.zeros(v.frames, dtype=bool)
            for s, e, _ in p.occluded:
                hidden[s:e] = True
            for f in sorted((root / "cropped_aligned" / p.name).glob("*.jpg")):
                i = int(f.stem) - 1
                if hidden[i] or lab[i, 0] == -5:
                    continue
                with Image.open(f) as im:
                    curv.append(_mouth_curvature(np.asarray(im, dtype=np.float64)))
                valence.append(lab[i, 0])
    r = np.corrcoef(curv, valence)[0, 1]
    assert r > 0.3, r


def test_cli_reuses_and_prints_the_summary(corpus: tuple[Path, CorpusManifest], capsys, monkeypatch) -> None:
    from harness.cli import main

    monkeypatch.setenv("COLUMNS", "200")  # rich would squeeze the table into a captured 80-column console
    root, _ = corpus
    assert main(["corpus", "make", "--out", str(root), "--size", "small", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    for word in ("Train", "Validation", "Test", "oracle", "missing", "P_VA", "reused", "visual", "audio", "largest"):
        assert word in out
