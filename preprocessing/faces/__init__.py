"""Face detection with 5 landmarks, subject tracking and similarity alignment to 224x224 (paper IV.A).

Detectors load lazily (onnxruntime / torch are imported only when one is built).
"""

from preprocessing.faces.align import (
    TEMPLATE_224,
    align_face,
    alignment_matrix,
    estimate_similarity,
    template,
    transform_points,
    warp_affine,
)
from preprocessing.faces.base import AlignError, Face, FaceDetector, FaceError, WeightsMissingError, box_iou, nms
from preprocessing.faces.detectors import DEFAULT_DETECTOR, DETECTORS, get_detector
from preprocessing.faces.track import FaceTracker, TrackedFrame, pick_subject, pick_two
from preprocessing.faces.weights import WEIGHT_FILES, FetchError, fetch_weights, weight_path, weights_dir

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "TEMPLATE_224",
    "WEIGHT_FILES",
    "AlignError",
    "Face",
    "FaceDetector",
    "FaceError",
    "FaceTracker",
    "FetchError",
    "TrackedFrame",
    "WeightsMissingError",
    "align_face",
    "alignment_matrix",
    "box_iou",
    "estimate_similarity",
    "fetch_weights",
    "get_detector",
    "nms",
    "pick_subject",
    "pick_two",
    "template",
    "transform_points",
    "warp_affine",
    "weight_path",
    "weights_dir",
]
