"""Similarity alignment of a face to the 5-point template at 224x224 (paper IV.A: eyes, nose, mouth corners).

The template is the widely used ArcFace 5-point template for 112x112 crops (InsightFace's `arcface_dst`, the
reference points of its `norm_crop`: left eye, right eye, nose tip, left and right mouth corners), scaled by 2
to 224x224. Points use the detector convention: pixel (i, j) has its centre at x=j, y=i, the convention of
`cv2.warpAffine`, so crops made here match crops made by OpenCV-based pipelines to within interpolation rounding.

The similarity (rotation, uniform scale, translation; no reflection) is the least-squares fit of Umeyama (1991),
"Least-squares estimation of transformation parameters between two point patterns", IEEE TPAMI 13(4).
The warp is bilinear with black outside the image; it runs through Pillow's C affine transform, and
`warp_affine_numpy` is the pure numpy reference the tests hold it to.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from preprocessing.faces.base import AlignError

# ArcFace template for 112x112 (x, y), scaled to 224x224.
_ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],  # left eye
        [73.5318, 51.5014],  # right eye
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # left mouth corner
        [70.7299, 92.2041],  # right mouth corner
    ],
    dtype=np.float32,
)
TEMPLATE_224: np.ndarray = _ARCFACE_112 * np.float32(2.0)
TEMPLATE_224.setflags(write=False)


def template(size: int = 224) -> np.ndarray:
    """The 5-point template scaled to a `size` x `size` crop: (5, 2) float32."""
    return (_ARCFACE_112 * np.float32(size / 112.0)).astype(np.float32)


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama) that maps `src` points onto `dst` points.

    Args:
        src: (N, 2) points, N >= 2.
        dst: (N, 2) corresponding points.

    Returns:
        (2, 3) float64 matrix M with dst ~= M @ [x, y, 1] (rotation * scale, then translation).

    Raises:
        AlignError: shapes differ, fewer than 2 points, non-finite values, or all `src` points coincide.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or src.shape[0] < 2:
        raise AlignError(f"need two (N>=2, 2) point sets of the same shape, got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise AlignError("landmarks contain NaN or inf")
    n = src.shape[0]
    mu_s = src.mean(axis=0)
    mu_d = dst.mean(axis=0)
    s_c = src - mu_s  # (N, 2)
    d_c = dst - mu_d  # (N, 2)
    var_s = float((s_c**2).sum() / n)
    if var_s <= 1e-12:
        raise AlignError("all source landmarks coincide; no similarity transform exists")
    cov = d_c.T @ s_c / n  # (2, 2)
    U, S, Vt = np.linalg.svd(cov)
    D = np.ones(2)
    # A reflection would fit better when det(cov) < 0; a similarity may not mirror a face, so flip the last axis.
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[-1] = -1.0
    R = U @ np.diag(D) @ Vt
    scale = float((S * D).sum() / var_s)
    t = mu_d - scale * R @ mu_s
    M = np.empty((2, 3), dtype=np.float64)
    M[:, :2] = scale * R
    M[:, 2] = t
    return M


def transform_points(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to (N, 2) points; returns (N, 2) float64."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    M = np.asarray(M, dtype=np.float64)
    return pts @ M[:, :2].T + M[:, 2]


def invert_affine(M: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine matrix, as (2, 3)."""
    M = np.asarray(M, dtype=np.float64)
    A_inv = np.linalg.inv(M[:, :2])
    out = np.empty((2, 3), dtype=np.float64)
    out[:, :2] = A_inv
    out[:, 2] = -A_inv @ M[:, 2]
    return out


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise AlignError(f"expected an HxWx3 uint8 image, got shape {image.shape} dtype {image.dtype}")
    return np.ascontiguousarray(image)


def warp_affine(image: np.ndarray, M: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Warp `image` by the forward map M (source pixel -> output pixel), bilinear, black outside.

    Args:
        image: HxWx3 uint8.
        M: (2, 3) matrix taking source coordinates to output coordinates (pixel centres at integers).
        size: output side, or (width, height).

    Returns:
        (height, width, 3) uint8.
    """
    image = _check_image(image)
    w, h = (size, size) if isinstance(size, int) else size
    inv = invert_affine(M)
    # Pillow samples the input at inv(output + 0.5) with pixel centres at +0.5; shift both ends so the map
    # holds between integer-centred coordinates, as for cv2.warpAffine.
    A = inv[:, :2]
    c = inv[:, 2] + 0.5 - A @ np.array([0.5, 0.5])
    coeffs = (A[0, 0], A[0, 1], c[0], A[1, 0], A[1, 1], c[1])
    out = Image.fromarray(image).transform((w, h), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
    return np.asarray(out)


def warp_affine_numpy(image: np.ndarray, M: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Pure numpy reference of `warp_affine` (bilinear, taps outside the image read as black)."""
    image = _check_image(image)
    w, h = (size, size) if isinstance(size, int) else size
    H, W = image.shape[:2]
    inv = invert_affine(M)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)  # (h, w) each
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    x0 = np.floor(sx).astype(np.int64)
    y0 = np.floor(sy).astype(np.int64)
    fx = (sx - x0)[..., None]  # (h, w, 1)
    fy = (sy - y0)[..., None]
    padded = np.zeros((H + 2, W + 2, 3), dtype=np.float64)
    padded[1:-1, 1:-1] = image
    # Index the padded image: anything beyond one pixel outside clamps onto the black frame.
    xi = np.clip(x0 + 1, 0, W + 1)
    yi = np.clip(y0 + 1, 0, H + 1)
    xj = np.clip(x0 + 2, 0, W + 1)
    yj = np.clip(y0 + 2, 0, H + 1)
    top = padded[yi, xi] * (1 - fx) + padded[yi, xj] * fx  # (h, w, 3)
    bottom = padded[yj, xi] * (1 - fx) + padded[yj, xj] * fx
    out = top * (1 - fy) + bottom * fy
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def alignment_matrix(landmarks: np.ndarray, size: int = 224) -> np.ndarray:
    """The (2, 3) similarity taking detected `landmarks` (5, 2) onto the template of a `size` crop."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (5, 2):
        raise AlignError(f"expected (5, 2) landmarks, got shape {landmarks.shape}")
    return estimate_similarity(landmarks, template(size))


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 224) -> np.ndarray:
    """Crop and align one face: similarity from its 5 landmarks to the template, warped to `size` x `size`.

    Args:
        image: HxWx3 uint8 RGB frame.
        landmarks: (5, 2) x, y of left eye, right eye, nose, left and right mouth corners in `image`.
        size: side of the square output.

    Returns:
        (size, size, 3) uint8 crop; parts that fall outside the frame are black.
    """
    return warp_affine(image, alignment_matrix(landmarks, size), size)
