"""What a demo corpus holds: size presets and the per-video plan drawn from the seed.

The plan fixes everything that is decided per video before rendering (split, length, frame size, who appears,
which hard cases it carries); the per-frame content is drawn later from each video's own seed, so videos can be
rendered in any order, in parallel, and still come out the same.

Every size carries every feature: at least one two-person video, one video without an audio track, and in every
split at least one video with unannotated (-5) stretches, one with frames that show no face, one with occlusions
and one with silent stretches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from submissions.errors import HarnessError

SPLITS = ("Train", "Validation", "Test")
"""Split names as the annotation folders spell them (`<split>_Set`)."""

FEATURES = ("unannotated", "no_face", "occlusion", "silent")
"""Hard cases a video may carry; `spec.features[name]` is how many stretches of each."""


class CorpusSpecError(HarnessError):
    """An unknown size preset or an impossible corpus plan."""


@dataclass(frozen=True)
class SizePreset:
    """How big a corpus is.

    Args:
        n_videos: raw videos.
        duration_s: (shortest, longest) video length in seconds.
        frame_sizes: (width, height) choices for one-person videos.
        two_person_size: (width, height) of two-person videos.
        face_px: (smallest, largest) face width in pixels (2.2 x the interocular distance).
        two_person: how many videos show two annotated people.
    """

    n_videos: int
    duration_s: tuple[float, float]
    frame_sizes: tuple[tuple[int, int], ...]
    two_person_size: tuple[int, int]
    face_px: tuple[float, float]
    two_person: int


PRESETS: dict[str, SizePreset] = {
    "small": SizePreset(7, (4.0, 6.0), ((256, 256), (256, 192)), (320, 192), (60.0, 150.0), 2),
    "medium": SizePreset(12, (10.0, 20.0), ((320, 240), (256, 256)), (320, 240), (72.0, 150.0), 2),
    "default": SizePreset(24, (20.0, 60.0), ((320, 240), (256, 256)), (320, 240), (72.0, 150.0), 3),
}
"""small: tests (seconds to build); medium: quick experiments; default: the demo."""

FPS = 25


@dataclass(frozen=True)
class PersonSpec:
    """One annotated person of a video.

    Args:
        subject: subject id, unique within the corpus (so distinct across splits).
        clip: index of the GRID clip that gives the face.
        mirror: the face is mirrored horizontally.
        tint: (r, g, b) colour gains of this person's skin and scene.
        face_px: face width in the frame, pixels.
        base_f0: pitch of the voice at arousal 0 (Hz).
        formant_scale: vocal-tract scaling of the voice.
    """

    subject: str
    clip: int
    mirror: bool
    tint: tuple[float, float, float]
    face_px: float
    base_f0: float
    formant_scale: float


@dataclass(frozen=True)
class VideoSpec:
    """One raw video of the plan.

    Args:
        index: position in the corpus (0-based).
        name: raw video name (file stem).
        split: "Train", "Validation" or "Test".
        fps: frame rate.
        n_frames: frames.
        width: frame width.
        height: frame height.
        persons: one or two people (left, right).
        audio: "present" or "absent" (no audio track at all).
        features: number of stretches of each hard case in `FEATURES`.
        annotation_sd: standard deviation of the annotation noise.
        snr_db: speech-to-background ratio at arousal 0, dB.
        seed: entropy of this video's own random stream.
    """

    index: int
    name: str
    split: str
    fps: int
    n_frames: int
    width: int
    height: int
    persons: tuple[PersonSpec, ...]
    audio: str
    features: dict[str, int]
    annotation_sd: float
    snr_db: float
    seed: tuple[int, ...]

    @property
    def two_person(self) -> bool:
        """Whether the video shows two annotated people (`<name>_left`, `<name>_right`)."""
        return len(self.persons) == 2

    @property
    def annotation_names(self) -> tuple[str, ...]:
        """Names of the annotation files (and crop folders) of this video."""
        if self.two_person:
            return (f"{self.name}_left", f"{self.name}_right")
        return (self.name,)


def preset(size: str) -> SizePreset:
    """The preset called `size`; CorpusSpecError naming the choices otherwise."""
    if size not in PRESETS:
        raise CorpusSpecError(f"unknown corpus size {size!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[size]


def split_counts(n: int) -> dict[str, int]:
    """Videos per split, about 60/20/20 with at least one video in each."""
    if n < 3:
        raise CorpusSpecError(f"a corpus needs at least 3 videos (one per split), got {n}")
    n_val = max(1, round(0.2 * n))
    n_test = max(1, round(0.2 * n))
    return {"Train": n - n_val - n_test, "Validation": n_val, "Test": n_test}


def _person(rng: np.random.Generator, subject: str, n_clips: int, face_px: tuple[float, float], cap: float):
    low_voice = bool(rng.random() < 0.5)
    f0 = float(rng.uniform(95.0, 140.0) if low_voice else rng.uniform(170.0, 230.0))
    return PersonSpec(
        subject=subject,
        clip=int(rng.integers(n_clips)),
        mirror=bool(rng.random() < 0.5),
        tint=tuple(float(x) for x in np.clip(1.0 + 0.07 * rng.standard_normal(3), 0.85, 1.15)),
        face_px=float(rng.uniform(min(face_px[0], cap), min(face_px[1], cap))),
        base_f0=round(f0, 2),
        formant_scale=round(float(rng.uniform(0.92, 1.0) if low_voice else rng.uniform(1.05, 1.15)), 4),
    )


def plan_corpus(seed: int, size: str, n_clips: int) -> list[VideoSpec]:
    """Every video of a corpus, decided from the seed.

    Args:
        seed: corpus seed.
        size: a key of `PRESETS`.
        n_clips: how many GRID clips there are to draw faces from.
    """
    p = preset(size)
    if n_clips < 1:
        raise CorpusSpecError("no GRID clips to render faces from")
    rng = np.random.default_rng([seed, 0x5EED])
    counts = split_counts(p.n_videos)
    splits = np.array([s for s in SPLITS for _ in range(counts[s])])
    rng.shuffle(splits)
    # Two-person videos go to Train, then Test (the sample file must list `_left`/`_right` rows), then Validation.
    two: list[int] = []
    for k in range(p.two_person):
        pool = [i for i in range(p.n_videos) if splits[i] == ("Train", "Test", "Validation")[k % 3] and i not in two]
        two.append(int(rng.choice(pool)))
    no_audio = int(rng.choice([i for i in range(p.n_videos) if splits[i] == "Train" and i not in two]))
    features = {
        name: (rng.random((p.n_videos,)) < share) for name, share in zip(FEATURES, (0.4, 0.6, 0.5, 0.6), strict=True)
    }
    for name, has in features.items():
        # The video without a track has no silent stretches (it is all silence) and keeps its face in view
        # throughout (with no voice, nothing else could carry the affect).
        if name != "unannotated":
            has[no_audio] = False
        for s in SPLITS:
            members = [i for i in np.flatnonzero(splits == s) if name == "unannotated" or i != no_audio]
            if not has[members].any():
                has[int(rng.choice(members))] = True
    videos: list[VideoSpec] = []
    subject = 0
    for i in range(p.n_videos):
        is_two = i in two
        width, height = p.two_person_size if is_two else p.frame_sizes[int(rng.integers(len(p.frame_sizes)))]
        slot_w = width // 2 if is_two else width
        # Faces wider than about 0.42 of the frame's long side are missed by SCRFD at its usual 640 px input.
        cap = min(0.38 * max(width, height), 0.62 * height, 0.8 * slot_w)
        persons: list[PersonSpec] = []
        for k in range(2 if is_two else 1):
            subject += 1
            person = _person(rng, f"S{subject:03d}", n_clips, p.face_px, cap)
            if k == 1 and n_clips > 1:
                # Two people side by side are two different faces (and face each other).
                person = replace(person, clip=(persons[0].clip + 1) % n_clips, mirror=not persons[0].mirror)
            persons.append(person)
        n_frames = round(float(rng.uniform(*p.duration_s)) * FPS)
        feats = {name: (int(rng.integers(1, 3)) if features[name][i] else 0) for name in FEATURES}
        videos.append(
            VideoSpec(
                index=i,
                name=f"{i + 1:03d}-{FPS}-{width}x{height}",
                split=str(splits[i]),
                fps=FPS,
                n_frames=n_frames,
                width=width,
                height=height,
                persons=tuple(persons),
                audio="absent" if i == no_audio else "present",
                features=feats,
                annotation_sd=round(float(rng.uniform(0.04, 0.1)), 4),
                snr_db=round(float(rng.uniform(8.0, 25.0)), 2),
                seed=(seed, 0xC0DE, i),
            )
        )
    return videos
