"""What a demo corpus holds: size presets and the per-video plan drawn from the seed.

The plan fixes everything that is decided per video before rendering (split, length, frame size, who appears,
which hard cases it carries); the per-frame content is drawn later from each video's own seed, so videos can be
rendered in any order, in parallel, and still come out the same.

Every size carries every feature: at least one two-person video, one video without an audio track, and in every
split at least one video with unannotated (-5) stretches, one with frames that show no face, one with occlusions
and one with silent stretches.

A size may also bound how much of a split one video carries (`SizePreset.max_video_share`): the video bootstrap
behind every confidence interval resamples raw videos, so a split dominated by one video gives an interval that
means little. The planner shortens the longest videos of a split until none carries more than that share of the
split's scored frames (a two-person video counts its frames twice, as the scorer does, and counts as one video,
as the bootstrap does); `video_shares` measures it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from core.errors import HarnessError

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
        two_person_duration_s: (shortest, longest) length of two-person videos in seconds; None: `duration_s`.
            Their frames count twice in a split's score, so a shorter range keeps their share in line.
        max_video_share: the largest share of a split's scored frames one raw video may carry (both people of a
            two-person video together); the planner shortens the longest videos to meet it. None: no bound.
        hard_case_share: scales the share of videos carrying each hard case of `FEATURES` (1: the demo's shares;
            every split still holds at least one video with each).
    """

    n_videos: int
    duration_s: tuple[float, float]
    frame_sizes: tuple[tuple[int, int], ...]
    two_person_size: tuple[int, int]
    face_px: tuple[float, float]
    two_person: int
    two_person_duration_s: tuple[float, float] | None = None
    max_video_share: float | None = None
    hard_case_share: float = 1.0


PRESETS: dict[str, SizePreset] = {
    "small": SizePreset(7, (4.0, 6.0), ((256, 256), (256, 192)), (320, 192), (60.0, 150.0), 2),
    # The quick demo (CI's guarded run): 40 videos of 4.5-7.5 s (24 Train / 8 Validation / 8 Test), so that a few
    # minutes of CPU train models that learn and every test score has a video-bootstrap interval; a third of the
    # default's hard cases and one two-person video (in Train). Many short videos rather than fewer long ones: what
    # limits a model trained in minutes is how many speakers it sees (30 videos of 6-10 s: BDCA's test P_VA
    # 0.41-0.44; harness/configs/quick.yaml has the measurements).
    "ci": SizePreset(
        40,
        (4.5, 7.5),
        ((256, 192), (256, 256)),
        (320, 192),
        (60.0, 150.0),
        1,
        two_person_duration_s=(4.0, 6.0),
        max_video_share=0.35,
        hard_case_share=0.3,
    ),
    "medium": SizePreset(12, (10.0, 20.0), ((320, 240), (256, 256)), (320, 240), (72.0, 150.0), 2),
    # 48 videos of 12-28 s (two-person ones 6-13 s, counted twice): about the 960 s of the 24 videos of 20-60 s
    # this size had before, with 10 test videos instead of 5 and none above 15 % of its split.
    "default": SizePreset(
        48,
        (12.0, 28.0),
        ((320, 240), (256, 256)),
        (320, 240),
        (72.0, 150.0),
        3,
        two_person_duration_s=(6.0, 13.0),
        max_video_share=0.15,
    ),
}
"""small: tests (seconds to build); ci: the quick demo (CI's guarded run); medium: quick experiments; default: the
demo."""

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
        name: (rng.random((p.n_videos,)) < share * p.hard_case_share)
        for name, share in zip(FEATURES, (0.4, 0.6, 0.5, 0.6), strict=True)
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
        lengths = p.two_person_duration_s if is_two and p.two_person_duration_s else p.duration_s
        n_frames = round(float(rng.uniform(*lengths)) * FPS)
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
    if p.max_video_share is not None:
        videos = cap_video_shares(videos, p.max_video_share, _shortest_frames(p))
    return videos


def _shortest_frames(p: SizePreset) -> int:
    return round(min(p.duration_s[0], (p.two_person_duration_s or p.duration_s)[0]) * FPS)


def _weight(v: VideoSpec) -> int:
    # Scored frames: every annotated person of a video is scored on every frame.
    return v.n_frames * len(v.persons)


def frame_shares(rows: Iterable[tuple[str, str, int]]) -> dict[str, dict[str, float]]:
    """Share of its split's scored frames that each raw video carries.

    Args:
        rows: one (split, raw video name, scored frames) per raw video, where scored frames = frames x annotated
            people (the scorer scores each person of a two-person video on every frame, and the video bootstrap
            draws both people together as one cluster).

    Returns:
        split -> raw video name -> share in [0, 1]; the shares of a split sum to 1. Splits in `SPLITS` order first,
        then any other split met; a split without frames is left out.
    """
    totals: dict[str, int] = {}
    rows = list(rows)
    for split, _, weight in rows:
        totals[split] = totals.get(split, 0) + weight
    order = [s for s in SPLITS if s in totals] + sorted(s for s in totals if s not in SPLITS)
    return {split: {n: w / totals[split] for s, n, w in rows if s == split} for split in order if totals[split] > 0}


def video_shares(plan: list[VideoSpec]) -> dict[str, dict[str, float]]:
    """`frame_shares` of a plan: split -> raw video name -> its share of the split's scored frames."""
    return frame_shares((v.split, v.name, _weight(v)) for v in plan)


def max_video_share(plan: list[VideoSpec]) -> dict[str, float]:
    """The largest share of a split's scored frames that one raw video carries, per split (see `frame_shares`).

    Args:
        plan: the videos of a corpus (from `plan_corpus`).

    Returns:
        split -> the largest share in (0, 1].
    """
    return {split: max(shares.values()) for split, shares in video_shares(plan).items()}


def cap_video_shares(plan: list[VideoSpec], cap: float, min_frames: int) -> list[VideoSpec]:
    """The plan with its longest videos shortened so that no video carries more than `cap` of its split.

    Pure and deterministic: it only trims `n_frames` (every random draw of the plan happens before, and a video's
    per-frame content is drawn later from its own seed), so the rest of the plan is unchanged. Each pass trims the
    largest video of a split to the share the others leave it; trimming lowers the split's total, so passes repeat
    until every share fits.

    Args:
        plan: the videos of a corpus.
        cap: the largest share allowed, in (0, 1).
        min_frames: no video is trimmed below this length.

    Returns:
        The trimmed plan, same order; `max_video_share` of it is <= cap for every split.

    Raises:
        CorpusSpecError: when the cap is outside (0, 1), or a split holds too few videos to meet it without a
            video shorter than `min_frames`.
    """
    if not 0.0 < cap < 1.0:
        raise CorpusSpecError(f"max_video_share must lie in (0, 1), got {cap}")
    frames = [v.n_frames for v in plan]
    for split in SPLITS:
        members = [i for i, v in enumerate(plan) if v.split == split]
        while members:
            weights = {i: frames[i] * len(plan[i].persons) for i in members}
            total = sum(weights.values())
            big = min(members, key=lambda i: (-weights[i], i))  # the largest; the lower index breaks ties
            if weights[big] <= cap * total:
                break
            # w <= cap * (others + w)  <=>  w <= cap * others / (1 - cap); the floors keep it on the safe side.
            allowed = int(cap * (total - weights[big]) / (1.0 - cap)) // len(plan[big].persons)
            if allowed < min_frames:
                raise CorpusSpecError(
                    f"{split}: {len(members)} video(s) cannot keep each video within {cap:.0%} of the split "
                    f"without one shorter than {min_frames} frames; plan more videos per split"
                )
            frames[big] = allowed
    return [v if v.n_frames == n else replace(v, n_frames=n) for v, n in zip(plan, frames, strict=True)]
