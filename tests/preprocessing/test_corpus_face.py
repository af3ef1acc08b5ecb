"""Rendering expressions onto the real GRID faces, and the landmarks those faces come with."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preprocessing.corpus import grid
from preprocessing.corpus.face import (
    Expression,
    displacement,
    expression_bumps,
    face_region,
    lighting_lut,
    place,
    similarity,
    warp_face,
)
from preprocessing.faces.align import transform_points
from tests._weights import require_scrfd


@pytest.fixture(scope="module")
def clip() -> grid.SourceClip:
    return grid.load_clips()[0]


def test_shipped_clips_load_with_table_landmarks() -> None:
    clips = grid.load_clips()
    assert len(clips) >= 2
    assert (grid.ASSETS_DIR / grid.NOTICE_NAME).is_file()
    for c in clips:
        assert c.landmark_source == "table"
        T = c.frames.shape[0]
        assert T >= 6 and c.frames.shape[1:] == (288, 360, 3)
        assert c.landmarks.shape == (T, 5, 2)
        lm = c.landmarks.mean(axis=0)
        # Frontal face: eyes level and apart, nose between, mouth below.
        assert lm[0, 0] < lm[2, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]
        assert lm[2, 1] > lm[0, 1] and lm[3, 1] > lm[2, 1]
        assert 40 < c.interocular < 65


def test_table_landmarks_match_the_projects_detector() -> None:
    from preprocessing.faces import get_detector

    require_scrfd()
    detector = get_detector("scrfd")
    clips = grid.load_clips()
    assert clips, "no clip to check"
    for c in clips:
        for i in range(0, c.frames.shape[0], 4):
            faces = detector.detect(c.frames[i])
            assert faces, f"{c.name} frame {i}: no face"
            err = np.linalg.norm(faces[0].landmarks - c.landmarks[i], axis=1)
            assert err.max() < 4.0, (c.name, i, err)


def test_quiet_range_finds_the_silence_before_speech() -> None:
    sr, fps, n = 8000, 25, 75
    t = np.arange(n * sr // fps) / sr
    audio = np.where((t > 1.0) & (t < 2.6), np.sin(2 * np.pi * 200 * t), 1e-4 * np.sin(2 * np.pi * 50 * t))
    assert grid.quiet_range(audio, sr, n, fps) == (0, 20)  # frames 0-24 quiet, 5 dropped next to speech
    assert grid.quiet_range(np.ones(n * sr // fps), sr, n, fps) == (0, n)  # no quiet run at all: whole clip


def test_neutral_expression_changes_nothing(clip: grid.SourceClip) -> None:
    img, lm = clip.frames[0], clip.landmarks[0]
    out, q = warp_face(img, lm, Expression())
    assert np.array_equal(out, img)
    assert np.allclose(q, lm)


@pytest.mark.parametrize("smile", [-1.0, 1.0])
def test_smile_moves_the_mouth_corners(clip: grid.SourceClip, smile: float) -> None:
    img, lm = clip.frames[0], clip.landmarks[0].astype(np.float64)
    D = np.linalg.norm(lm[1] - lm[0])
    out, q = warp_face(img, lm, Expression(smile=smile))
    rise = (lm[3:, 1] - q[3:, 1]) / D  # up is -y
    assert np.all(np.sign(rise) == np.sign(smile))
    assert np.all(np.abs(rise) > 0.07)
    assert np.abs(q[:3] - lm[:3]).max() < 0.06 * D  # eyes and nose stay
    if smile > 0:
        assert q[4, 0] - q[3, 0] > lm[4, 0] - lm[3, 0]  # and the mouth widens
    assert not np.array_equal(out, img)


def test_open_mouth_shows_a_dark_cavity(clip: grid.SourceClip) -> None:
    img, lm = clip.frames[0], clip.landmarks[0]
    out, q = warp_face(img, lm, Expression(mouth_open=1.0))
    cx, cy = np.rint(0.5 * (q[3] + q[4])).astype(int)
    before = img[cy - 2 : cy + 6, cx - 4 : cx + 5].mean()
    after = out[cy - 2 : cy + 6, cx - 4 : cx + 5].mean()
    assert after < 0.7 * before


def test_brows_and_eyes_change_only_the_upper_face(clip: grid.SourceClip) -> None:
    img, lm = clip.frames[0], clip.landmarks[0]
    out, q = warp_face(img, lm, Expression(brow=1.0, eye_open=1.0))
    changed = np.abs(out.astype(int) - img.astype(int)).max(axis=2) > 8  # (H, W)
    rows = np.flatnonzero(changed.any(axis=1))
    assert rows.size > 0
    eyes_y, nose_y = lm[:2, 1].mean(), lm[2, 1]
    assert rows.min() < eyes_y - 10  # the brows moved
    assert rows.max() < nose_y  # the mouth did not
    assert np.abs(q[2:] - lm[2:]).max() < 0.5


@settings(max_examples=30, deadline=None)
@given(
    smile=st.floats(-1.2, 1.2),
    brow=st.floats(-1, 1),
    knit=st.floats(0, 1),
    eye=st.floats(-1, 1),
    mouth=st.floats(0, 1),
)
def test_displacement_field_never_folds(smile: float, brow: float, knit: float, eye: float, mouth: float) -> None:
    lm = grid.typical_landmarks(360, 288).astype(np.float64)
    expr = Expression(smile=smile, brow=brow, knit=knit, eye_open=eye, mouth_open=mouth)
    centres, sigmas, vectors = expression_bumps(lm, expr)
    x0, y0, x1, y1 = face_region(lm, (288, 360))
    d = displacement(centres, sigmas, vectors, np.arange(x0, x1, 0.5), np.arange(y0, y1, 0.5))
    # The backward map p -> p - d(p) stays one-to-one when its Jacobian determinant stays positive.
    dxx = np.gradient(d[..., 0], 0.5, axis=1)
    dxy = np.gradient(d[..., 0], 0.5, axis=0)
    dyx = np.gradient(d[..., 1], 0.5, axis=1)
    dyy = np.gradient(d[..., 1], 0.5, axis=0)
    det = (1 - dxx) * (1 - dyy) - dxy * dyx
    assert det.min() > 0.3


def test_similarity_and_place_with_mirror(clip: grid.SourceClip) -> None:
    img, lm = clip.frames[0], clip.landmarks[0].astype(np.float64)
    centre = lm.mean(axis=0)
    M = similarity(centre, np.array([100.0, 90.0]), 0.5, 10.0, mirror=False)
    assert np.allclose(transform_points(M, centre[None]), [[100.0, 90.0]])
    slot, pts = place(img, lm, M, (200, 180), mirror=False)
    assert slot.shape == (180, 200, 3)
    assert np.isclose(np.linalg.norm(pts[1] - pts[0]), 0.5 * np.linalg.norm(lm[1] - lm[0]))
    Mm = similarity(centre, np.array([100.0, 90.0]), 0.5, 0.0, mirror=True)
    _, pm = place(img, lm, Mm, (200, 180), mirror=True)
    assert pm[0, 0] < pm[1, 0] and pm[3, 0] < pm[4, 0]  # left/right swapped back after the mirror


def test_lighting_lut() -> None:
    lut = lighting_lut(1.0, 1.0, np.ones(3))
    assert lut[:256] == list(range(256)) and len(lut) == 768
    dark = lighting_lut(0.5, 1.0, np.array([1.0, 1.0, 2.0]))
    assert dark[200] == 100 and dark[512 + 200] == 200 and dark[512 + 255] == 255
