"""Expressions rendered onto real face imagery by landmark-driven local displacement fields.

A displacement field is a sum of Gaussian bumps, each centred near a landmark with its own width and
displacement vector, all sized in units of the interocular distance D:

- smile: both mouth corners up (and, when positive, outwards) by up to 0.15 D; the lip centre follows by the
  Gaussian fall-off, which bends the lip line into a smile (or a frown for negative values); cheeks rise a little;
- mouth opening: the jaw and lower lip drop by up to 0.22 D, the upper lip rises a little, and a dark oral
  cavity is painted between the lips;
- eye opening: upper lids up, lower lids down (wider eyes with arousal), a few pixels at most;
- brows: up or down by up to 0.09 D, and inwards when knitted.

The field is the backward map out(p) = in(p - d(p)); a feature at q therefore lands near q + d(q) and the
landmarks move by solving that fixed point. Every bump's peak slope stays below 0.5 so the map never folds. The
field is evaluated on a region around the face only, with separable Gaussians (one small matrix product per
channel) and a taper to zero at the region's border, so a frame costs about a millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from preprocessing.faces.align import transform_points, warp_affine

MIRROR_ORDER = np.array([1, 0, 2, 4, 3])
"""Landmark order after a horizontal mirror (left and right swap)."""


@dataclass(frozen=True)
class Expression:
    """One frame's expression, every value a float.

    Args:
        smile: mouth corners, -1 (down) to 1 (up).
        brow: brow height, -1 (down) to 1 (up).
        knit: brow knitting, 0 to 1 (inner brows in and down).
        eye_open: -1 (narrow) to 1 (wide).
        mouth_open: 0 (closed) to 1 (wide open).
    """

    smile: float = 0.0
    brow: float = 0.0
    knit: float = 0.0
    eye_open: float = 0.0
    mouth_open: float = 0.0


def _frame_axes(landmarks: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    eye_l, eye_r = landmarks[0], landmarks[1]
    d = float(np.linalg.norm(eye_r - eye_l))
    right = (eye_r - eye_l) / max(d, 1e-6)
    up = np.array([right[1], -right[0]])  # image y grows downwards: up is right turned by -90 degrees
    return d, right, up


def expression_bumps(landmarks: np.ndarray, expr: Expression) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Gaussian bumps of one expression on one face.

    Args:
        landmarks: (5, 2) source landmarks.
        expr: the expression.

    Returns:
        centres (K, 2), sigmas (K,) and displacement vectors (K, 2), in pixels.
    """
    D, right, up = _frame_axes(landmarks)
    eye_l, eye_r, _nose, m_l, m_r = (landmarks[i].astype(np.float64) for i in range(5))
    mc = 0.5 * (m_l + m_r)
    s = float(np.clip(expr.smile, -1.2, 1.2))
    sp = max(s, 0.0)
    mo = float(np.clip(expr.mouth_open, 0.0, 1.0))
    eo = float(np.clip(expr.eye_open, -1.0, 1.0))
    br = float(np.clip(expr.brow, -1.0, 1.0))
    kn = float(np.clip(expr.knit, 0.0, 1.0))
    centres, sigmas, vectors = [], [], []

    def bump(c: np.ndarray, sigma: float, v: np.ndarray) -> None:
        centres.append(c)
        sigmas.append(sigma * D)
        vectors.append(v * D)

    bump(m_l, 0.25, s * 0.15 * up - sp * 0.07 * right)
    bump(m_r, 0.25, s * 0.15 * up + sp * 0.07 * right)
    bump(0.5 * (m_l + eye_l) - 0.15 * right, 0.3, sp * 0.05 * up)
    bump(0.5 * (m_r + eye_r) + 0.15 * right, 0.3, sp * 0.05 * up)
    bump(mc - 0.15 * D * up, 0.3, -mo * 0.2 * up)
    bump(mc + 0.1 * D * up, 0.15, mo * 0.035 * up)
    for eye, inward in ((eye_l, right), (eye_r, -right)):
        bump(eye + 0.1 * D * up, 0.1, eo * 0.035 * up)
        bump(eye - 0.08 * D * up, 0.08, -eo * 0.015 * up)
        bump(eye + 0.42 * D * up, 0.2, br * 0.09 * up)
        bump(eye + 0.4 * D * up + 0.18 * D * inward, 0.15, kn * (0.05 * inward - 0.04 * up))
    return np.array(centres), np.array(sigmas), np.array(vectors)


def displacement(
    centres: np.ndarray, sigmas: np.ndarray, vectors: np.ndarray, xs: np.ndarray, ys: np.ndarray
) -> np.ndarray:
    """The summed bump field on the grid xs (W,) by ys (H,): (H, W, 2) float64 (dx, dy)."""
    gx = np.exp(-0.5 * ((xs[None, :] - centres[:, 0:1]) / sigmas[:, None]) ** 2)  # (K, W)
    gy = np.exp(-0.5 * ((ys[None, :] - centres[:, 1:2]) / sigmas[:, None]) ** 2)  # (K, H)
    dx = gy.T @ (vectors[:, 0:1] * gx)  # (H, W)
    dy = gy.T @ (vectors[:, 1:2] * gx)  # (H, W)
    return np.stack([dx, dy], axis=-1)


def field_at(centres: np.ndarray, sigmas: np.ndarray, vectors: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """The bump field at scattered points (P, 2): (P, 2)."""
    d2 = ((pts[:, None, :] - centres[None, :, :]) ** 2).sum(-1)  # (P, K)
    return np.exp(-0.5 * d2 / sigmas[None, :] ** 2) @ vectors


def _bilinear(image: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    H, W = image.shape[:2]
    sx = np.clip(sx, 0.0, W - 1.001)
    sy = np.clip(sy, 0.0, H - 1.001)
    # Only the rectangle the samples read from is converted to float.
    bx, by = int(sx.min()), int(sy.min())
    sub = image[by : int(sy.max()) + 2, bx : int(sx.max()) + 2]
    sw = sub.shape[1]
    sx = sx - bx
    sy = sy - by
    x0 = sx.astype(np.int64)
    y0 = sy.astype(np.int64)
    fx = (sx - x0).astype(np.float32)[..., None]  # (h, w, 1)
    fy = (sy - y0).astype(np.float32)[..., None]
    # Gathering rows of the flattened image is several times faster than 2-D fancy indexing.
    flat = sub.reshape(-1, 3).astype(np.float32)  # (h' * w', 3)
    i = y0 * sw + x0  # (h, w)
    a, b = np.take(flat, i, axis=0), np.take(flat, i + 1, axis=0)  # (h, w, 3)
    c, d = np.take(flat, i + sw, axis=0), np.take(flat, i + sw + 1, axis=0)
    return (a + (b - a) * fx) * (1 - fy) + (c + (d - c) * fx) * fy


def face_region(landmarks: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Axis-aligned region (x0, y0, x1, y1) that holds every bump's reach, clipped to an image of `shape` (H, W)."""
    D, _, _ = _frame_axes(landmarks)
    lo = landmarks.min(axis=0)
    hi = landmarks.max(axis=0)
    x0 = int(np.floor(lo[0] - 0.9 * D))
    x1 = int(np.ceil(hi[0] + 0.9 * D))
    y0 = int(np.floor(lo[1] - 1.1 * D))
    y1 = int(np.ceil(hi[1] + 1.1 * D))
    H, W = shape
    return max(0, x0), max(0, y0), min(W, x1), min(H, y1)


def _taper(n: int) -> np.ndarray:
    edge = max(2, n // 8)
    w = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, edge))
    w[:edge] = ramp
    w[n - edge :] = ramp[::-1]
    return w


def warp_face(image: np.ndarray, landmarks: np.ndarray, expr: Expression) -> tuple[np.ndarray, np.ndarray]:
    """Render an expression onto a face.

    Args:
        image: HxWx3 uint8 frame holding the face.
        landmarks: (5, 2) the face's landmarks in `image`.
        expr: the expression to render.

    Returns:
        A new HxWx3 uint8 frame and the (5, 2) float64 landmarks where the features ended up.
    """
    centres, sigmas, vectors = expression_bumps(landmarks, expr)
    x0, y0, x1, y1 = face_region(landmarks, image.shape[:2])
    xs = np.arange(x0, x1, dtype=np.float64)
    ys = np.arange(y0, y1, dtype=np.float64)
    d = displacement(centres, sigmas, vectors, xs, ys)  # (h, w, 2)
    d *= (_taper(len(ys))[:, None] * _taper(len(xs))[None, :])[..., None]
    out = image.copy()
    warped = _bilinear(image, xs[None, :] - d[..., 0], ys[:, None] - d[..., 1])  # (h, w, 3)
    D, right, up = _frame_axes(landmarks)
    # Landmarks: solve q = p + d(q) by fixed-point iteration (the field is smooth, three steps suffice).
    lm = landmarks.astype(np.float64)
    q = lm.copy()
    for _ in range(3):
        q = lm + field_at(centres, sigmas, vectors, q)
    if expr.mouth_open > 0.02:
        _paint_cavity(warped, xs, ys, q, D, right, up, float(expr.mouth_open))
    out[y0:y1, x0:x1] = np.clip(np.rint(warped), 0, 255).astype(np.uint8)
    return out, q


def _paint_cavity(
    roi: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    lm: np.ndarray,
    D: float,
    right: np.ndarray,
    up: np.ndarray,
    m: float,
) -> None:
    # The lips part around the warped lip line; the gap shows a dark mouth cavity (soft-edged ellipse).
    mc = 0.5 * (lm[3] + lm[4]) - 0.07 * m * D * up
    half_w = 0.5 * float(np.linalg.norm(lm[4] - lm[3])) * (0.55 + 0.3 * m)
    half_h = max(0.5, 0.1 * m * D)
    # Work on the box that can hold the ellipse only.
    reach = 1.5 * max(half_w, half_h)
    cols = np.flatnonzero(np.abs(xs - mc[0]) <= reach)
    rows = np.flatnonzero(np.abs(ys - mc[1]) <= reach)
    if not cols.size or not rows.size:
        return
    c0, c1, r0, r1 = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
    px = xs[None, c0:c1] - mc[0]
    py = ys[r0:r1, None] - mc[1]
    u = px * right[0] + py * right[1]
    v = px * up[0] + py * up[1]
    r = np.sqrt((u / half_w) ** 2 + (v / half_h) ** 2)  # (h, w)
    alpha = (np.clip(1.4 - r, 0.0, 0.4) / 0.4 * min(1.0, 2.5 * m)).astype(np.float32)[..., None]
    box = roi[r0:r1, c0:c1]
    box *= 1.0 - alpha
    box += alpha * np.array([62.0, 24.0, 26.0], dtype=np.float32)


def similarity(
    src_center: np.ndarray, dst_center: np.ndarray, scale: float, angle_deg: float, mirror: bool = False
) -> np.ndarray:
    """The (2, 3) map that takes `src_center` to `dst_center`, scaling, rotating and optionally mirroring about it."""
    a = np.deg2rad(angle_deg)
    R = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    if mirror:
        R = R @ np.diag([-1.0, 1.0])
    M = np.empty((2, 3))
    M[:, :2] = R
    M[:, 2] = np.asarray(dst_center, dtype=np.float64) - R @ np.asarray(src_center, dtype=np.float64)
    return M


def place(image: np.ndarray, landmarks: np.ndarray, M: np.ndarray, size: tuple[int, int], mirror: bool):
    """Warp a source frame into an output slot of `size` (width, height) with the forward map M.

    Returns:
        The (height, width, 3) uint8 slot and the (5, 2) landmarks in it (left/right reordered after a mirror).
    """
    slot = warp_affine(image, M, size)
    pts = transform_points(M, landmarks)
    return slot, (pts[MIRROR_ORDER] if mirror else pts)


def lighting_lut(gain: float, gamma: float, tint: np.ndarray) -> list[int]:
    """A 768-entry Pillow `point` table: gamma, then gain, then a per-channel tint, clipped to [0, 255]."""
    base = (np.arange(256) / 255.0) ** gamma * 255.0 * gain
    return np.concatenate([np.clip(np.rint(base * t), 0, 255) for t in tint]).astype(np.int64).tolist()
