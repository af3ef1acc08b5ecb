"""SCRFD-2.5G face detector with 5 landmarks, on onnxruntime (the default detector of this project).

SCRFD: Guo et al., "Sample and Computation Redistribution for Efficient Face Detection", ICLR 2022. The network
(InsightFace's `scrfd_2.5g_bnkps`) comes as an onnx file inside the `scrfd==0.3.0` source distribution on PyPI;
`harness fetch-weights` puts it in the weights folder. Licence of the weights: InsightFace releases its pretrained
models for non-commercial research use only.

The network is fully convolutional with three heads (strides 8, 16 and 32, two anchors per location). For each
anchor it gives a face probability, four distances from the anchor centre to the box sides and five landmark
offsets from the centre, all in units of the stride. The exported graph is fixed at 640x640; it is patched in
memory (`onnx_patch`) to accept any size that is a multiple of 32, so a frame can run at a smaller input:

- `input_size=N`: the frame is resized (aspect kept) so its longer side is N, then padded right/bottom with
  black to multiples of 32 (not to a square, which would only add padding work). N=640 matches the usual
  InsightFace setting; 320 is about 4x cheaper and still finds the frontal faces of GRID in every frame.
- `input_size=None`: the frame keeps its own size, padded to multiples of 32.

Input normalisation follows InsightFace: RGB, (pixel - 127.5) / 128.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from preprocessing.faces.base import Face, FaceError, nms
from preprocessing.faces.onnx_patch import make_scrfd_dynamic
from preprocessing.faces.weights import weight_path

STRIDES = (8, 16, 32)
ANCHORS_PER_LOCATION = 2


def anchor_centers(height: int, width: int, stride: int, per_location: int = ANCHORS_PER_LOCATION) -> np.ndarray:
    """Anchor centres of one head, in input pixels, in the network's output order.

    Args:
        height: input height (a multiple of `stride`).
        width: input width (a multiple of `stride`).
        stride: the head's stride.
        per_location: anchors per grid location.

    Returns:
        (H/stride * W/stride * per_location, 2) float32 x, y: row-major over the grid, the anchors of one location
        next to each other.
    """
    gh, gw = height // stride, width // stride
    ys, xs = np.mgrid[0:gh, 0:gw]
    centers = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride  # (gh*gw, 2)
    return np.repeat(centers, per_location, axis=0)  # (gh*gw*per_location, 2)


def decode(
    scores: np.ndarray,
    box_dist: np.ndarray,
    kps_dist: np.ndarray,
    centers: np.ndarray,
    stride: int,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode one head's outputs into boxes and landmarks, keeping anchors with score >= threshold.

    Args:
        scores: (N,) face probabilities.
        box_dist: (N, 4) distances left, top, right, bottom from the anchor centre, in strides.
        kps_dist: (N, 10) landmark offsets x0, y0, ..., x4, y4 from the anchor centre, in strides.
        centers: (N, 2) anchor centres.
        stride: the head's stride.
        threshold: minimum score.

    Returns:
        boxes (K, 4), scores (K,), landmarks (K, 5, 2), in input pixels.
    """
    keep = scores >= threshold
    c = centers[keep]  # (K, 2)
    d = box_dist[keep] * stride  # (K, 4)
    boxes = np.concatenate([c - d[:, :2], c + d[:, 2:]], axis=1)  # (K, 4)
    kps = c[:, None, :] + kps_dist[keep].reshape(-1, 5, 2) * stride  # (K, 5, 2)
    return boxes.astype(np.float32), scores[keep].astype(np.float32), kps.astype(np.float32)


def _pad32(n: int) -> int:
    return max(32, -(-n // 32) * 32)


class ScrfdDetector:
    """SCRFD-2.5G with 5 landmarks (see the module docstring).

    Args:
        weights: the onnx file; by default `scrfd_2.5g_kps.onnx` in the weights folder.
        input_size: longer side the frame is resized to before detection, or None to keep the frame's size.
        score_threshold: minimum face probability.
        nms_threshold: IoU above which the weaker of two overlapping detections is dropped.
        threads: onnxruntime intra-op threads (default: min(2, CPU count)).
        weights_dir: folder to look for the default weights file in.
    """

    name = "scrfd"

    def __init__(
        self,
        weights: str | Path | None = None,
        input_size: int | None = 640,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        threads: int | None = None,
        weights_dir: str | Path | None = None,
    ) -> None:
        import onnxruntime as ort

        path = Path(weights) if weights else weight_path("scrfd", weights_dir)
        if not path.is_file():
            raise FaceError(f"{path}: SCRFD weights file not found; run `harness fetch-weights`")
        if input_size is not None and input_size < 32:
            raise FaceError(f"SCRFD input_size must be >= 32 or None, got {input_size}")
        self.weights = path
        self.input_size = input_size
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                make_scrfd_dynamic(path.read_bytes()), options, providers=["CPUExecutionProvider"]
            )
        except FaceError:
            raise
        except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
            raise FaceError(f"{path}: cannot load as an SCRFD onnx model: {exc}") from exc
        self._input_name = self._session.get_inputs()[0].name
        names = [o.name for o in self._session.get_outputs()]
        # Outputs are named score_8 ... kps_32 in this export; fall back to the export's order otherwise.
        wanted = [f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in STRIDES]
        self._output_names = wanted if set(wanted) <= set(names) else names
        if len(self._output_names) != 9:
            raise FaceError(f"{path}: expected 9 outputs (3 strides x score/bbox/kps), got {len(names)}")
        self._anchor_cache: dict[tuple[int, int, int], np.ndarray] = {}

    def _scale_for(self, height: int, width: int) -> float:
        if self.input_size is None:
            return 1.0
        return self.input_size / max(height, width)

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """Resize, pad and normalise one frame.

        Args:
            image: HxWx3 uint8 RGB.

        Returns:
            (3, H', W') float32 network input and the resize factor (input pixels per frame pixel).
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise FaceError(f"expected an HxWx3 uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
        h, w = image.shape[:2]
        scale = self._scale_for(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        if (nh, nw) != (h, w):
            image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.BILINEAR))
        blob = np.zeros((3, _pad32(nh), _pad32(nw)), dtype=np.float32)
        blob[:] = -127.5 / 128.0  # black padding, normalised
        blob[:, :nh, :nw] = (image.transpose(2, 0, 1).astype(np.float32) - 127.5) / 128.0  # (3, nh, nw)
        return blob, scale

    def _anchors(self, height: int, width: int, stride: int) -> np.ndarray:
        key = (height, width, stride)
        if key not in self._anchor_cache:
            self._anchor_cache[key] = anchor_centers(height, width, stride)
        return self._anchor_cache[key]

    def _postprocess(self, outputs: list[np.ndarray], index: int, batch: int, height: int, width: int, scale: float):
        boxes, scores, kps = [], [], []
        for k, stride in enumerate(STRIDES):
            centers = self._anchors(height, width, stride)
            n = len(centers)
            # The export reshapes (B, H, W, A*k) to (1, -1, k): image `index` owns rows [index*n, (index+1)*n).
            rows = slice(index * n, (index + 1) * n)
            s = outputs[k].reshape(batch * n)[rows]
            b = outputs[k + 3].reshape(batch * n, 4)[rows]
            p = outputs[k + 6].reshape(batch * n, 10)[rows]
            bb, ss, kk = decode(s, b, p, centers, stride, self.score_threshold)
            boxes.append(bb)
            scores.append(ss)
            kps.append(kk)
        all_boxes = np.concatenate(boxes) / scale  # (K, 4) frame pixels
        all_scores = np.concatenate(scores)
        all_kps = np.concatenate(kps) / scale  # (K, 5, 2)
        keep = nms(all_boxes, all_scores, self.nms_threshold)
        return [Face(all_boxes[i], float(all_scores[i]), all_kps[i]) for i in keep]

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one HxWx3 uint8 RGB frame, best score first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces in each frame; frames of the same size run through the network as one batch."""
        results: list[list[Face]] = [[] for _ in images]
        prepared = [self.preprocess(img) for img in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (blob, _) in enumerate(prepared):
            groups.setdefault(blob.shape, []).append(i)
        for shape, idxs in groups.items():
            batch = np.stack([prepared[i][0] for i in idxs])  # (B, 3, H', W')
            outputs = self._session.run(self._output_names, {self._input_name: batch})
            for j, i in enumerate(idxs):
                results[i] = self._postprocess(outputs, j, len(idxs), shape[1], shape[2], prepared[i][1])
        return results
