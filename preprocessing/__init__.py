"""Media, files and the feature cache: decoding, faces, audio features, Aff-Wild2 readers, the demo corpus.

Public names are re-exported lazily (PEP 562): `from preprocessing import probe` imports only the video module,
so that the CLI does not pay for onnxruntime, openSMILE and torch when it needs none of them.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # video decoding
    "VideoError": "preprocessing.video", "VideoInfo": "preprocessing.video", "DecodeStats": "preprocessing.video",
    "probe": "preprocessing.video", "iter_frames": "preprocessing.video", "read_audio": "preprocessing.video",
    "read_frames": "preprocessing.video", "image_size": "preprocessing.video",
    "check_frame_size": "preprocessing.video", "check_audio_stream": "preprocessing.video",
    "MAX_FRAME_PIXELS": "preprocessing.video", "MAX_AUDIO_SECONDS": "preprocessing.video",
    # faces
    "TEMPLATE_224": "preprocessing.faces", "align_face": "preprocessing.faces",
    "estimate_similarity": "preprocessing.faces", "transform_points": "preprocessing.faces",
    "Face": "preprocessing.faces", "FaceDetector": "preprocessing.faces", "FaceTracker": "preprocessing.faces",
    "get_detector": "preprocessing.faces", "fetch_weights": "preprocessing.faces", "weights_dir": "preprocessing.faces",
    "WeightsMissingError": "preprocessing.faces",
    "extract_crops": "preprocessing.crops", "CropReport": "preprocessing.crops", "SubjectCrops": "preprocessing.crops",
    # audio
    "compute_audio_features": "preprocessing.audio", "extract_opensmile": "preprocessing.audio",
    "align_rows_to_frames": "preprocessing.audio", "audio_feature_config": "preprocessing.audio",
    "AudioError": "preprocessing.timeline", "MFCC_DIM": "preprocessing.audio", "EGEMAPS_DIM": "preprocessing.audio",
    "VGGISH_DIM": "preprocessing.audio",
    "vggish_status": "preprocessing.vggish", "load_vggish": "preprocessing.vggish",
    "VGGishError": "preprocessing.vggish",
    # dataset layout and cache
    "AffWild2Layout": "preprocessing.affwild2", "VideoEntry": "preprocessing.affwild2",
    "ReconcileReport": "preprocessing.affwild2", "LayoutError": "preprocessing.affwild2",
    "reconcile_lengths": "preprocessing.affwild2", "load_expressions": "preprocessing.affwild2",
    "FeatureCache": "preprocessing.cache", "CacheError": "preprocessing.cache",
    "CacheLockedError": "preprocessing.cache",
    # demo corpus
    "make_corpus": "preprocessing.corpus",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'preprocessing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
