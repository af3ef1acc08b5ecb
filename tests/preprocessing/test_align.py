"""Similarity estimation and face alignment to the 224x224 5-point template."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preprocessing.faces.align import (
    TEMPLATE_224,
    align_face,
    alignment_matrix,
    estimate_similarity,
    invert_affine,
    template,
    transform_points,
    warp_affine,
    warp_affine_numpy,
)
from preprocessing.faces.base import AlignError


def _similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


def test_template_is_arcface_scaled_to_224() -> None:
    assert TEMPLATE_224.shape == (5, 2)
    assert TEMPLATE_224.dtype == np.float32
    np.testing.assert_allclose(TEMPLATE_224[0], [76.5892, 103.3926], atol=1e-3)
    np.testing.assert_allclose(template(112) * 2, TEMPLATE_224, atol=1e-4)
    # Eyes above nose above mouth; left features have the smaller x.
    assert TEMPLATE_224[0, 0] < TEMPLATE_224[1, 0] and TEMPLATE_224[3, 0] < TEMPLATE_224[4, 0]
    assert TEMPLATE_224[:2, 1].max() < TEMPLATE_224[2, 1] < TEMPLATE_224[3:, 1].min()
    with pytest.raises(ValueError):
        TEMPLATE_224[0, 0] = 0.0


@settings(max_examples=200, deadline=None)
@given(
    scale=st.floats(0.05, 20.0),
    angle=st.floats(-np.pi, np.pi),
    tx=st.floats(-500, 500),
    ty=st.floats(-500, 500),
    seed=st.integers(0, 2**32 - 1),
)
def test_estimate_similarity_recovers_a_known_similarity(
    scale: float, angle: float, tx: float, ty: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    src = rng.uniform(0, 300, size=(5, 2))
    if np.linalg.matrix_rank(src - src.mean(0), tol=1.0) < 2:
        return  # nearly collinear points: the similarity is still unique but the tolerance below is not meaningful
    M = _similarity(scale, angle, tx, ty)
    dst = transform_points(M, src)
    est = estimate_similarity(src, dst)
    np.testing.assert_allclose(est[:, :2], M[:, :2], atol=1e-8 * max(1.0, scale))
    np.testing.assert_allclose(est[:, 2], M[:, 2], atol=1e-6 * max(1.0, scale))
    np.testing.assert_allclose(transform_points(est, src), dst, atol=1e-6 * max(1.0, scale))


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), noise=st.floats(0.0, 5.0))
def test_estimate_similarity_is_least_squares_and_never_reflects(seed: int, noise: float) -> None:
    rng = np.random.default_rng(seed)
    src = rng.uniform(0, 200, size=(5, 2))
    dst = rng.uniform(0, 200, size=(5, 2)) + rng.normal(0, noise, size=(5, 2))
    est = estimate_similarity(src, dst)
    A = est[:, :2]
    # A similarity: A = s R with R a rotation (orthogonal rows, equal norms, positive determinant).
    assert np.linalg.det(A) > 0
    assert abs(A[0, 0] - A[1, 1]) < 1e-9 and abs(A[0, 1] + A[1, 0]) < 1e-9
    best = ((transform_points(est, src) - dst) ** 2).sum()
    # No small perturbation of the parameters does better.
    s, ang = np.hypot(A[0, 0], A[1, 0]), np.arctan2(A[1, 0], A[0, 0])
    for d in np.eye(4) * 1e-4:
        for sign in (1, -1):
            p = _similarity(s * (1 + sign * d[0]), ang + sign * d[1], est[0, 2] + sign * d[2], est[1, 2] + sign * d[3])
            assert ((transform_points(p, src) - dst) ** 2).sum() >= best - 1e-9


def test_mirrored_points_give_a_rotation_not_a_reflection() -> None:
    src = TEMPLATE_224.astype(np.float64)
    dst = src * np.array([-1.0, 1.0])
    est = estimate_similarity(src, dst)
    assert np.linalg.det(est[:, :2]) > 0


def test_degenerate_landmarks_raise() -> None:
    with pytest.raises(AlignError, match="coincide"):
        estimate_similarity(np.ones((5, 2)), TEMPLATE_224)
    with pytest.raises(AlignError, match="NaN"):
        estimate_similarity(np.full((5, 2), np.nan), TEMPLATE_224)
    with pytest.raises(AlignError, match="shape"):
        alignment_matrix(np.zeros((4, 2)))
    with pytest.raises(AlignError, match="uint8"):
        align_face(np.zeros((10, 10), dtype=np.uint8), TEMPLATE_224)


def test_invert_affine_round_trips() -> None:
    M = _similarity(1.7, 0.4, 12.0, -3.0)
    pts = np.array([[0.0, 0.0], [10.0, 5.0], [-3.0, 7.0]])
    np.testing.assert_allclose(transform_points(invert_affine(M), transform_points(M, pts)), pts, atol=1e-9)


def test_pillow_warp_matches_the_numpy_reference_inside_the_image() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    M = _similarity(1.7, 0.3, 5.3, -20.1)
    fast = warp_affine(img, M, 224).astype(int)
    ref = warp_affine_numpy(img, M, 224).astype(int)
    inv = invert_affine(M)
    ys, xs = np.mgrid[0:224, 0:224]
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    inside = (sx > 1) & (sx < 158) & (sy > 1) & (sy < 118)
    far_outside = (sx < -1) | (sx > 160) | (sy < -1) | (sy > 120)
    assert inside.sum() > 10_000 and far_outside.sum() > 1_000
    # Pillow truncates where the reference rounds: at most one grey level apart.
    assert np.abs(fast - ref)[inside].max() <= 1
    assert fast[far_outside].max() == 0 and ref[far_outside].max() == 0


def test_identity_warp_keeps_the_image() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = warp_affine(img, np.array([[1.0, 0, 0], [0, 1.0, 0]]), 64)
    np.testing.assert_array_equal(out, img)


def _blob_image(points: np.ndarray, h: int, w: int, sigma: float = 1.5) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3), dtype=np.float64)
    for ch, (x, y) in enumerate(points):
        blob = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
        img[..., ch % 3] += 250 * blob  # neighbouring points on different channels, so they stay apart
    return np.clip(img, 0, 255).astype(np.uint8)


def _centroid(channel: np.ndarray, near: np.ndarray, radius: int = 8) -> np.ndarray:
    x0, y0 = round(float(near[0])), round(float(near[1]))
    patch = channel[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1].astype(np.float64)
    patch = np.where(patch > 0.2 * patch.max(), patch, 0.0)
    ys, xs = np.mgrid[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1]
    return np.array([(patch * xs).sum() / patch.sum(), (patch * ys).sum() / patch.sum()])


@pytest.mark.parametrize(("scale", "angle"), [(0.6, 0.25), (0.45, -0.4), (0.9, 0.0)])
def test_aligned_landmarks_land_on_the_template(scale: float, angle: float) -> None:
    # A face in a 360x288 frame: the template moved by a known similarity (smaller, rotated, off centre).
    to_frame = _similarity(scale, angle, 130.0, 60.0)
    landmarks = transform_points(to_frame, TEMPLATE_224)
    frame = _blob_image(landmarks, 288, 360, sigma=1.5 * scale)
    crop = align_face(frame, landmarks)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    for k in range(5):
        found = _centroid(crop[..., k % 3], TEMPLATE_224[k])
        # A half-pixel convention slip would show as ~0.5 px here.
        assert np.hypot(*(found - TEMPLATE_224[k])) < 0.25, (k, found, TEMPLATE_224[k])
