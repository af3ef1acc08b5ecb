"""`corpus_manifest.json`: what a demo corpus holds, how it was made, and the best score it allows.

Frame ranges (stretches) are 0-based and half-open, [start, end): frame f of a video is image `f + 1:05d`.jpg
and line f + 2 of its annotation file (after the header).

The manifest is written last; a corpus folder without it is incomplete. It holds no time stamps or paths, so the
same seed and size give the same manifest, byte for byte.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text
from core.errors import HarnessError
from core.safe_read import read_json
from preprocessing.corpus.spec import frame_shares

GENERATOR_VERSION = "1.2.0"
"""Bump whenever the same seed would give a different corpus; an existing corpus of another version is rebuilt."""

MANIFEST_FILE = "corpus_manifest.json"

ORACLE_MEANING = (
    "CCC (submissions.metrics.score_va: Lin's CCC with population moments over all frames of the split at once, "
    "frames labelled -5 dropped) between the label files and the clean latent valence/arousal from which the "
    "faces and voices were rendered. Labels = clean latent + smooth annotation noise (per video sd "
    "`annotation_noise_sd`, Gaussian-filtered with sigma 0.15 s), clipped to [-1, 1] and rounded to 3 decimals. "
    "A model that recovered the latent exactly from the media would score this; beating it means fitting the "
    "annotation noise. It is a ceiling, not a promise: the rendering nuisances listed under `noise` can hide part "
    "of the latent. "
    "`oracle_visual` and `oracle_audio` score, the same way, ideal readers of one modality "
    "(preprocessing.corpus.ceilings). Visual: where the mouth is in view (no lower-face patch) it reads valence as "
    "the smile the face is rendered with, V - I + smile jitter (I = w x y, the interaction share that needs the "
    "voice's brightness y); where the eyes are in view it reads arousal exactly from the eye opening. Audio: on the "
    "frames where the person's own voice sounds (never in silent stretches or in the video without a track; in a "
    "two-person video only in that person's turns, and the reader is told whose voice it hears) it reads arousal "
    "exactly from the prosody and valence exactly from the breathiness, a faint but exact function of V. Between "
    "seen frames both interpolate linearly, beyond them they hold the nearest value, and a person a modality never "
    "sees gets the Train split's mean clean value. Pose, light, compression and background noise are ignored, as "
    "for the oracle. They are what ideal reading of one modality allows on this corpus (a model beats one only by "
    "fitting the annotation noise or guessing hidden stretches better than a straight line); they are not targets."
)

NOISE = {
    "annotation": "labels = clean + sd * smooth Gaussian noise (sigma 0.15 s), sd per video in [0.04, 0.10]",
    "face": "smile jitter sd 0.06 (sigma 0.4 s) not in the labels; head roll sd 3 deg, scale sd 5 %, shift sd "
    "4 %/3 % of the slot; light gain x exp(0.12 N) with a sudden step in half the videos, gamma x exp(0.1 N); "
    "per-person colour tint sd 7 %; JPEG q90 crops, H.264 crf 20 video",
    "voice": "pitch jitter 0.15 semitone; stationary pink-ish background noise at snr_db per video (8-25 dB "
    "below the neutral speech level); AAC 48 kbit/s",
    "cues": "a share of valence (w x y with w = 0.45) is only recoverable from the brow cue x (face) and the "
    "voice brightness y together; see preprocessing.corpus.cues",
}


def _split_order(split: str) -> int:
    order = ("Train", "Validation", "Test")
    return order.index(split) if split in order else len(order)


class ManifestError(HarnessError):
    """A corpus manifest that cannot be read."""


Stretch = tuple[int, int]

# A short list of numbers (and one kind word) spread over lines by json.dumps: a stretch, kept on one line.
_STRETCH = re.compile(r"\[\s*(-?\d+,\s*-?\d+(?:,\s*\"\w+\")?)\s*\]")


@dataclass(frozen=True)
class PersonEntry:
    """One annotated person (one annotation file, one crop folder).

    Args:
        name: annotation name.
        subject: subject id, unique in the corpus.
        source_clip: GRID clip the face comes from.
        mirror: the face is mirrored.
        face_px: face width in the frame, pixels.
        base_f0: voice pitch at arousal 0, Hz.
        crops: frames with an aligned crop (face shown).
        missing_faces: frames without a crop.
        unannotated_frames: frames labelled -5.
        unannotated: -5 stretches.
        occluded: (start, end, "lower" | "whole") stretches; "whole" frames have no crop.
        no_face: stretches where the person is out of the picture.
        expr_unannotated_frames: frames whose expression label is -1 (Train and Validation videos; 0 for Test,
            which has no expression file).
        refinable_frames: frames labelled -5 whose expression is known (what label refinement can give a target).
    """

    name: str
    subject: str
    source_clip: str
    mirror: bool
    face_px: float
    base_f0: float
    crops: int
    missing_faces: int
    unannotated_frames: int
    unannotated: tuple[Stretch, ...] = ()
    occluded: tuple[tuple[int, int, str], ...] = ()
    no_face: tuple[Stretch, ...] = ()
    expr_unannotated_frames: int = 0
    refinable_frames: int = 0


@dataclass(frozen=True)
class VideoEntry:
    """One raw video.

    Args:
        name: raw video name (`videos/batch1/<name>.mp4`).
        split: "Train", "Validation" or "Test".
        fps: frame rate.
        frames: video frames (= lines of each annotation file after the header).
        width: frame width.
        height: frame height.
        two_person: two annotated people (`<name>_left`, `<name>_right`).
        audio: "present" or "absent" (no audio track).
        silent: stretches without speech.
        annotation_noise_sd: sd of the annotation noise.
        snr_db: speech-to-background ratio at arousal 0.
        persons: the annotated people.
    """

    name: str
    split: str
    fps: int
    frames: int
    width: int
    height: int
    two_person: bool
    audio: str
    silent: tuple[Stretch, ...]
    annotation_noise_sd: float
    snr_db: float
    persons: tuple[PersonEntry, ...]


@dataclass(frozen=True)
class OracleScore:
    """The oracle's CCC over one split (see ORACLE_MEANING).

    Args:
        ccc_v: valence.
        ccc_a: arousal.
        p_va: mean of the two.
        frames: annotated frames scored.
    """

    ccc_v: float
    ccc_a: float
    p_va: float
    frames: int


@dataclass(frozen=True)
class SourceEntry:
    """A GRID clip used for faces.

    Args:
        file: file name.
        sha256: digest of the file.
        landmarks: "table", "detector" or "typical" (see preprocessing.corpus.grid).
        quiet_frames: (start, end) frames of the clip used.
    """

    file: str
    sha256: str
    landmarks: str
    quiet_frames: Stretch


@dataclass(frozen=True)
class CorpusManifest:
    """Everything about one generated corpus.

    Args:
        generator_version: `GENERATOR_VERSION` of the generator that wrote it.
        seed: corpus seed.
        size: size preset.
        sample_rate: audio sample rate of the tracks.
        videos: every raw video, in corpus order.
        oracle: split name ("Train", "Validation", "Test", "all") -> the oracle's score.
        sources: the GRID clips the faces come from.
        oracle_visual: split name -> the ideal face-only reader's score (see `oracle_meaning`); empty in
            manifests written before generator 1.1.0.
        oracle_audio: split name -> the ideal voice-only reader's score (see `oracle_meaning`); empty likewise.
        oracle_meaning: what the oracle and the two modality ceilings are, in words.
        noise: the noise the generator adds, in words.
    """

    generator_version: str
    seed: int
    size: str
    sample_rate: int
    videos: tuple[VideoEntry, ...]
    oracle: dict[str, OracleScore]
    sources: tuple[SourceEntry, ...]
    oracle_visual: dict[str, OracleScore] = field(default_factory=dict)
    oracle_audio: dict[str, OracleScore] = field(default_factory=dict)
    oracle_meaning: str = ORACLE_MEANING
    noise: dict[str, str] = field(default_factory=lambda: dict(NOISE))

    def names(self, split: str | None = None) -> list[str]:
        """Annotation names, in corpus order, of one split or of all."""
        return [p.name for v in self.videos if split in (None, v.split) for p in v.persons]

    def frames_of(self, name: str) -> int:
        """Frame count of the video an annotation name belongs to."""
        for v in self.videos:
            if any(p.name == name for p in v.persons):
                return v.frames
        raise KeyError(name)

    def split_of(self, name: str) -> str:
        """Split of an annotation name."""
        for v in self.videos:
            if any(p.name == name for p in v.persons):
                return v.split
        raise KeyError(name)

    def summary(self) -> dict[str, dict[str, int]]:
        """Per split and "all": videos, annotated people, frames, frames without a face and -5 frames.

        Frames count per annotated person (a two-person video counts its frames twice), as the scorer does.
        """
        out: dict[str, dict[str, int]] = {}
        for split in (*sorted({v.split for v in self.videos}, key=_split_order), "all"):
            vids = [v for v in self.videos if split in ("all", v.split)]
            persons = [(v, p) for v in vids for p in v.persons]
            out[split] = {
                "videos": len(vids),
                "people": len(persons),
                "frames": sum(v.frames for v, _ in persons),
                "missing_faces": sum(p.missing_faces for _, p in persons),
                "unannotated": sum(p.unannotated_frames for _, p in persons),
                "two_person": sum(v.two_person for v in vids),
                "no_audio": sum(v.audio == "absent" for v in vids),
            }
        return out

    def video_shares(self) -> dict[str, dict[str, float]]:
        """Split -> raw video -> its share of the split's scored frames (see `spec.frame_shares`).

        Both people of a two-person video count together, as the video bootstrap draws them.
        """
        return frame_shares((v.split, v.name, v.frames * len(v.persons)) for v in self.videos)

    def max_video_share(self) -> dict[str, float]:
        """Split -> the largest share of its scored frames that one raw video carries."""
        return {split: max(shares.values()) for split, shares in self.video_shares().items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return asdict(self)

    def to_json(self) -> str:
        """The manifest's JSON text (sorted keys, 2-space indent, one line per stretch, trailing newline)."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        return _STRETCH.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CorpusManifest:
        """The inverse of `to_dict`."""
        videos = tuple(
            VideoEntry(
                **{
                    **{k: v for k, v in vd.items() if k not in ("persons", "silent")},
                    "silent": tuple(tuple(s) for s in vd["silent"]),
                    "persons": tuple(
                        PersonEntry(
                            **{
                                **pd,
                                "unannotated": tuple(tuple(s) for s in pd["unannotated"]),
                                "occluded": tuple(tuple(s) for s in pd["occluded"]),
                                "no_face": tuple(tuple(s) for s in pd["no_face"]),
                            }
                        )
                        for pd in vd["persons"]
                    ),
                }
            )
            for vd in d["videos"]
        )
        return cls(
            generator_version=d["generator_version"],
            seed=int(d["seed"]),
            size=d["size"],
            sample_rate=int(d["sample_rate"]),
            videos=videos,
            oracle={k: OracleScore(**v) for k, v in d["oracle"].items()},
            sources=tuple(SourceEntry(**{**s, "quiet_frames": tuple(s["quiet_frames"])}) for s in d["sources"]),
            oracle_visual={k: OracleScore(**v) for k, v in d.get("oracle_visual", {}).items()},
            oracle_audio={k: OracleScore(**v) for k, v in d.get("oracle_audio", {}).items()},
            oracle_meaning=d.get("oracle_meaning", ORACLE_MEANING),
            noise=dict(d.get("noise", NOISE)),
        )


def write_manifest(root: Path, manifest: CorpusManifest) -> Path:
    """Write `corpus_manifest.json` atomically into the corpus root."""
    return atomic_write_text(Path(root) / MANIFEST_FILE, manifest.to_json())


def read_manifest(root: Path) -> CorpusManifest:
    """Read `corpus_manifest.json` of a corpus root; ManifestError naming the file when it is absent or bad."""
    path = Path(root) / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(f"{path}: no corpus manifest (not a demo corpus, or one whose generation did not finish)")
    data = read_json(path, "corpus manifest")
    try:
        return CorpusManifest.from_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ManifestError(f"{path}: not a valid corpus manifest: {exc}") from exc
