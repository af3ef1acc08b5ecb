"""MTCNN face detector with 5 landmarks in plain torch (an alternative to the default SCRFD).

Zhang et al., "Joint Face Detection and Alignment using Multi-task Cascaded Convolutional Networks", IEEE SPL
2016. Three small networks run as a cascade: P-Net proposes windows over an image pyramid, R-Net refines them
on 24x24 crops, O-Net refines again on 48x48 crops and places the five landmarks. The weights are the PyTorch
state dicts that the `facenet-pytorch==2.6.0` wheel carries (MIT licence), fetched by `harness fetch-weights`
and loaded with `weights_only=True`; the networks are written here (the package itself pins an old torch).

Conventions of those converted weights: RGB input scaled as (x - 127.5) / 128; R-Net and O-Net flatten their last
feature map in (W, H, C) order (the original Caffe models were trained on transposed images); O-Net gives the
five landmark x coordinates then the five y coordinates, relative to its box.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from preprocessing.faces.base import Face, nms
from preprocessing.faces.weights import weight_path


class PNet(nn.Module):
    """Proposal network: fully convolutional, a 12x12 window per output cell (stride 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, 3)
        self.prelu1 = nn.PReLU(10)
        self.conv2 = nn.Conv2d(10, 16, 3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, 3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Face probability (B, H', W') and box offsets (B, 4, H', W') for a (B, 3, H, W) batch."""
        x = self.prelu1(self.conv1(x))  # (B, 10, H-2, W-2)
        x = F.max_pool2d(x, 2, 2, ceil_mode=True)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))  # (B, 32, H', W')
        prob = F.softmax(self.conv4_1(x), dim=1)[:, 1]  # (B, H', W')
        return prob, self.conv4_2(x)


class RNet(nn.Module):
    """Refinement network on 24x24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, 3)
        self.prelu1 = nn.PReLU(28)
        self.conv2 = nn.Conv2d(28, 48, 3)
        self.prelu2 = nn.PReLU(48)
        self.conv3 = nn.Conv2d(48, 64, 2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Face probability (N,) and box offsets (N, 4) for (N, 3, 24, 24) crops."""
        N = x.shape[0]  # x: (N, 3, size, size)
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(x))  # (N, 64, 3, 3)
        x = x.permute(0, 3, 2, 1).reshape(N, -1)  # (N, 576) in (W, H, C) order
        x = self.prelu4(self.dense4(x))  # (N, 128)
        return F.softmax(self.dense5_1(x), dim=1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """Output network on 48x48 crops: probability, box offsets and five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.prelu1 = nn.PReLU(32)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.prelu2 = nn.PReLU(64)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.prelu3 = nn.PReLU(64)
        self.conv4 = nn.Conv2d(64, 128, 2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Probability (N,), box offsets (N, 4) and landmarks (N, 10: x0..x4, y0..y4) for (N, 3, 48, 48) crops."""
        N = x.shape[0]  # x: (N, 3, size, size)
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x))  # (N, 128, 3, 3)
        x = x.permute(0, 3, 2, 1).reshape(N, -1)  # (N, 1152) in (W, H, C) order
        x = self.prelu5(self.dense5(x))  # (N, 256)
        return F.softmax(self.dense6_1(x), dim=1)[:, 1], self.dense6_2(x), self.dense6_3(x)


def _load(net: nn.Module, key: str, weights_dir: str | Path | None) -> nn.Module:
    state = torch.load(weight_path(key, weights_dir), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.eval()


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply box offsets (fractions of the box size) to (N, 4) boxes."""
    wh = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)  # (N, 4): w, h, w, h
    return boxes + offsets * wh


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (side = longer side)."""
    c = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = np.max(boxes[:, 2:] - boxes[:, :2], axis=1, keepdims=True)
    return np.concatenate([c - side / 2, c + side / 2], axis=1)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) / 128.0


class MtcnnDetector:
    """MTCNN cascade (see the module docstring).

    Args:
        min_size: smallest face side searched, in pixels (the pyramid's first scale is 12 / min_size).
        thresholds: probability thresholds of P-Net, R-Net and O-Net.
        factor: scale step of the image pyramid.
        max_side: frames whose longer side exceeds this are downscaled first (speed; None keeps them).
        weights_dir: folder with mtcnn_pnet.pt, mtcnn_rnet.pt, mtcnn_onet.pt.
        threads: torch threads for the networks (None leaves torch's setting).
    """

    name = "mtcnn"

    def __init__(
        self,
        min_size: int = 40,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        max_side: int | None = 640,
        weights_dir: str | Path | None = None,
        threads: int | None = None,
    ) -> None:
        self.pnet = _load(PNet(), "mtcnn_pnet", weights_dir)
        self.rnet = _load(RNet(), "mtcnn_rnet", weights_dir)
        self.onet = _load(ONet(), "mtcnn_onet", weights_dir)
        self.min_size = min_size
        self.thresholds = thresholds
        self.factor = factor
        self.max_side = max_side
        self.score_threshold = thresholds[2]
        if threads:
            torch.set_num_threads(threads)

    def _crops(self, image: torch.Tensor, boxes: np.ndarray, size: int) -> torch.Tensor:
        """Resample each box of a (3, H, W) float image to size x size, black outside the image."""
        _, H, W = image.shape
        # A bilinear grid over each box, in normalised coordinates [-1, 1] (align_corners=False: pixel centres).
        t = (torch.arange(size, dtype=torch.float32) + 0.5) / size  # (size,)
        b = torch.as_tensor(boxes, dtype=torch.float32)
        xs = b[:, 0:1] + t[None] * (b[:, 2:3] - b[:, 0:1])  # (N, size), image x of each sample
        ys = b[:, 1:2] + t[None] * (b[:, 3:4] - b[:, 1:2])
        gx = (xs + 0.5) / W * 2 - 1
        gy = (ys + 0.5) / H * 2 - 1
        grid = torch.stack(
            [gx[:, None, :].expand(-1, size, -1), gy[:, :, None].expand(-1, -1, size)], dim=-1
        )  # (N, size, size, 2)
        grid = grid.reshape(1, len(boxes) * size, size, 2)  # all crops stacked in one tall grid
        out = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out[0].reshape(3, len(boxes), size, size).permute(1, 0, 2, 3)  # (N, 3, size, size)

    @torch.inference_mode()
    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one HxWx3 uint8 RGB frame, best score first."""
        h0, w0 = image.shape[:2]
        img = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()  # (3, H, W)
        shrink = 1.0
        if self.max_side and max(h0, w0) > self.max_side:
            shrink = self.max_side / max(h0, w0)
            img = F.interpolate(img[None], scale_factor=shrink, mode="area")[0]
        _, H, W = img.shape
        norm = _normalise(img)

        # Stage 1: P-Net over the pyramid.
        proposals = []
        scale = 12.0 / self.min_size
        while min(H, W) * scale >= 12:
            hs, ws = math.ceil(H * scale), math.ceil(W * scale)
            level = F.interpolate(img[None], size=(hs, ws), mode="area")  # (1, 3, hs, ws)
            prob, reg = self.pnet(_normalise(level))
            prob, reg = prob[0].numpy(), reg[0].numpy()  # (h', w'), (4, h', w')
            ys, xs = np.nonzero(prob >= self.thresholds[0])
            if len(ys):
                cells = np.stack([xs, ys], axis=1).astype(np.float32)  # (K, 2)
                # Each cell sees a 12x12 window at stride 2 of this level; map it back to the frame.
                boxes = np.concatenate([cells * 2 / scale, (cells * 2 + 12) / scale], axis=1)  # (K, 4)
                scores = prob[ys, xs]
                offsets = reg[:, ys, xs].T  # (K, 4)
                keep = nms(boxes, scores, 0.5)
                proposals.append((boxes[keep], scores[keep], offsets[keep]))
            scale *= self.factor
        if not proposals:
            return []
        boxes = np.concatenate([p[0] for p in proposals])
        scores = np.concatenate([p[1] for p in proposals])
        offsets = np.concatenate([p[2] for p in proposals])
        keep = nms(boxes, scores, 0.7)
        boxes = _square(_regress(boxes[keep], offsets[keep]))

        # Stage 2: R-Net on 24x24 crops.
        prob, reg = self.rnet(self._crops(norm, boxes, 24))
        prob, reg = prob.numpy(), reg.numpy()
        ok = prob >= self.thresholds[1]
        if not ok.any():
            return []
        boxes, scores, reg = boxes[ok], prob[ok], reg[ok]
        keep = nms(boxes, scores, 0.7)
        boxes = _square(_regress(boxes[keep], reg[keep]))

        # Stage 3: O-Net on 48x48 crops, with landmarks.
        prob, reg, marks = self.onet(self._crops(norm, boxes, 48))
        prob, reg, marks = prob.numpy(), reg.numpy(), marks.numpy()
        ok = prob >= self.thresholds[2]
        if not ok.any():
            return []
        boxes, scores, reg, marks = boxes[ok], prob[ok], reg[ok], marks[ok]
        wh = boxes[:, 2:] - boxes[:, :2]  # (N, 2)
        landmarks = np.stack(
            [boxes[:, 0:1] + marks[:, :5] * wh[:, 0:1], boxes[:, 1:2] + marks[:, 5:] * wh[:, 1:2]], axis=2
        )  # (N, 5, 2)
        boxes = _regress(boxes, reg)
        keep = nms(boxes, scores, 0.7)
        return [
            Face((boxes[i] / shrink).astype(np.float32), float(scores[i]), (landmarks[i] / shrink).astype(np.float32))
            for i in keep
        ]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """`detect` on each image."""
        return [self.detect(img) for img in images]
