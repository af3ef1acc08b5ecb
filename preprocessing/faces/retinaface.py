"""RetinaFace (ResNet-50), the detector the paper uses, through the optional `retinaface-pytorch` package.

Deng et al., "RetinaFace: Single-stage Dense Face Localisation in the Wild", CVPR 2020. The package is not a
dependency of this project (its metadata pins torch 1.9 and albumentations 1.0) and ships no weights: its
pretrained ResNet-50 comes from a GitHub release that this project cannot fetch. So this detector is built only
when the package imports AND a weights file (the state dict of `retinaface.predict_single.Model`, e.g. the
`.pth` inside `retinaface_resnet50_2020-07-20-f168fae3c.zip`) is given and exists; otherwise a clear error
says which of the two is missing. SCRFD (`preprocessing.faces.scrfd`) is the default and finds the same five
landmarks in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from preprocessing.faces.base import Face, FaceError, WeightsMissingError


class RetinaFaceUnavailableError(FaceError):
    """The optional retinaface-pytorch package is not installed."""


class RetinaFaceDetector:
    """RetinaFace ResNet-50 from retinaface-pytorch (see the module docstring).

    Args:
        weights: path of the state dict (.pth); required, since nothing is downloaded.
        max_size: longer image side the package resizes to.
        score_threshold: minimum face probability.
        nms_threshold: IoU threshold of non-maximum suppression.
    """

    name = "retinaface"

    def __init__(
        self,
        weights: str | Path | None,
        max_size: int = 640,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.4,
    ) -> None:
        try:
            from retinaface.predict_single import Model
        except ImportError as exc:
            raise RetinaFaceUnavailableError(
                f"RetinaFace needs the optional package retinaface-pytorch, which is not installed ({exc}); "
                "install it without dependencies (`pip install --no-deps retinaface-pytorch albumentations`) "
                "or use the default detector `scrfd`"
            ) from exc
        if weights is None:
            raise WeightsMissingError(
                "RetinaFace weights: no file given; pass the path of the ResNet-50 state dict (.pth), "
                "e.g. `--detector-weights PATH`"
            )
        path = Path(weights)
        if not path.is_file():
            raise WeightsMissingError(f"{path}: RetinaFace weights file not found")
        import torch

        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self._model = Model(max_size=max_size, device="cpu")
        self._model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self._model.eval()

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one HxWx3 uint8 RGB frame, best score first."""
        found = self._model.predict_jsons(
            image, confidence_threshold=self.score_threshold, nms_threshold=self.nms_threshold
        )
        faces = [
            Face(
                np.asarray(f["bbox"], dtype=np.float32),
                float(f["score"]),
                np.asarray(f["landmarks"], dtype=np.float32).reshape(5, 2),
            )
            for f in found
            if len(f.get("bbox", [])) == 4 and len(f.get("landmarks", [])) == 5  # "no face" is one empty entry
        ]
        return sorted(faces, key=lambda f: -f.score)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """`detect` on each image."""
        return [self.detect(img) for img in images]
