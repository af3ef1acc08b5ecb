"""The deterministic demo corpus: a mini Aff-Wild2 rendered from real GRID faces and a synthetic voice.

`make_corpus(out, seed, size)` writes Aff-Wild2's layout (see `preprocessing.corpus.writer`) with
valence/arousal trajectories like the paper's Figs. 4-5 (`labels`), expressions warped onto real faces (`face`),
affective babble (`voice`), cues split so that fusion matters (`cues`), and a manifest with the oracle's CCC
ceiling (`manifest`).
"""

from preprocessing.corpus.build import CorpusError, Progress, default_workers, find_corpus, is_complete, make_corpus
from preprocessing.corpus.manifest import (
    GENERATOR_VERSION,
    MANIFEST_FILE,
    ORACLE_MEANING,
    CorpusManifest,
    ManifestError,
    OracleScore,
    PersonEntry,
    SourceEntry,
    VideoEntry,
    read_manifest,
)
from preprocessing.corpus.spec import PRESETS, SPLITS, CorpusSpecError, SizePreset, VideoSpec, plan_corpus

__all__ = [
    "GENERATOR_VERSION",
    "MANIFEST_FILE",
    "ORACLE_MEANING",
    "PRESETS",
    "SPLITS",
    "CorpusError",
    "CorpusManifest",
    "CorpusSpecError",
    "ManifestError",
    "OracleScore",
    "PersonEntry",
    "Progress",
    "SizePreset",
    "SourceEntry",
    "VideoEntry",
    "VideoSpec",
    "default_workers",
    "find_corpus",
    "is_complete",
    "make_corpus",
    "plan_corpus",
    "read_manifest",
]
