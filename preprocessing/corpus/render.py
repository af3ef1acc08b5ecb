"""One video of the demo corpus, from its plan to frames, landmarks, audio and labels.

`script_video` draws everything that varies per frame (labels, cues, hard-case stretches, head motion, lighting,
the voices) from the video's own seed, as arrays; `render_frames` then turns the script into frames one at a
time, with the exact landmarks of every face it shows. Both are free of file I/O.

Face states per frame and person: SHOWN, LOWER (lower face hidden behind a patch: mouth invisible, eyes and brows
visible, the face still counts as shown), WHOLE (the whole face hidden: no face) and ABSENT (the slot cuts to a
scene without anyone: no face). Occlusions and absences are placed only where the person's voice may sound, and
silent stretches (no speech at all) only where the face is in view, so at every moment at least one modality
carries each person's state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from preprocessing.corpus.cues import Cues, derive_cues
from preprocessing.corpus.face import Expression, lighting_lut, place, similarity, warp_face
from preprocessing.corpus.grid import SourceClip
from preprocessing.corpus.labels import annotate, expression_labels, smooth_noise, stretches_mask, va_trajectories
from preprocessing.corpus.spec import PersonSpec, VideoSpec
from preprocessing.corpus.voice import (
    SAMPLE_RATE,
    VoiceParams,
    background_noise,
    finish_mix,
    plan_syllables,
    synthesize_voice,
)
from submissions.formats import UNANNOTATED

SHOWN, LOWER, WHOLE, ABSENT = 0, 1, 2, 3
"""Face states of a person in a frame."""

FACE_WIDTH_PER_IOD = 2.2
"""Face width (as a detector's box) per interocular distance."""

EXPR_STREAM = 0xE4B2
"""Seed-sequence entry of the expression labels' random streams (`[video seed, EXPR_STREAM, person]`)."""

PAD = 128
"""Edge padding (pixels) around source frames, so small faces never show the frame border."""

_OCCLUDER_COLOURS = np.array([[200, 158, 128], [40, 42, 62], [228, 226, 214], [150, 44, 40], [70, 110, 70]])


@dataclass(frozen=True)
class PersonTrack:
    """Everything about one person of a video, per frame.

    Args:
        spec: who the person is.
        name: annotation name (`<video>` or `<video>_left` / `_right`).
        clean: (N, 2) clean valence and arousal (what the media are rendered from).
        labels: (N, 2) annotation: clean plus annotation noise, -5 in unannotated stretches.
        cues: rendering cues.
        state: (N,) int8 face state (SHOWN, LOWER, WHOLE, ABSENT).
        speaking: (N,) bool, frames where this person's voice may sound.
        mouth: (N,) mouth opening in [0, 1].
        smile_jitter: (N,) rendering nuisance added to the smile (not in the labels).
        rotation: (N,) head roll in degrees.
        scale: (N,) face size factor.
        shift: (N, 2) face offset in pixels.
        base: (N,) index of the source clip frame.
        unannotated: (start, end) frame ranges labelled -5.
        occluded: (start, end, "lower" | "whole") frame ranges.
        no_face: (start, end) frame ranges where the person is out of the picture.
        expr: (N,) expression classes, -1 where the expression annotation has a gap (None until drawn).
    """

    spec: PersonSpec
    name: str
    clean: np.ndarray
    labels: np.ndarray
    cues: Cues
    state: np.ndarray
    speaking: np.ndarray
    mouth: np.ndarray
    smile_jitter: np.ndarray
    rotation: np.ndarray
    scale: np.ndarray
    shift: np.ndarray
    base: np.ndarray
    unannotated: list[tuple[int, int]] = field(default_factory=list)
    occluded: list[tuple[int, int, str]] = field(default_factory=list)
    no_face: list[tuple[int, int]] = field(default_factory=list)
    expr: np.ndarray | None = None

    @property
    def face_shown(self) -> np.ndarray:
        """(N,) bool: frames where this person's face is in view (SHOWN or LOWER)."""
        return self.state <= LOWER


@dataclass(frozen=True)
class VideoScript:
    """One video, ready to render.

    Args:
        spec: the plan.
        persons: one or two tracks (left, right).
        audio: (round(N * 16000 / fps),) float32 mono at 16 kHz, or None when the video has no audio track.
        silent: (start, end) frame ranges without any speech.
        gain: (N,) light gain.
        gamma: (N,) light gamma.
        scene: (H, W, 3) uint8 picture shown where nobody is in view.
        occluder: (H, W, 3) uint8 texture of the occluding patches.
    """

    spec: VideoSpec
    persons: tuple[PersonTrack, ...]
    audio: np.ndarray | None
    silent: list[tuple[int, int]]
    gain: np.ndarray
    gamma: np.ndarray
    scene: np.ndarray
    occluder: np.ndarray


def place_stretches(
    rng: np.random.Generator,
    n: int,
    count: int,
    length: tuple[int, int],
    allowed: np.ndarray,
    taken: np.ndarray,
    gap: int,
) -> list[tuple[int, int]]:
    """Up to `count` non-overlapping frame ranges inside `allowed`, at least `gap` frames away from `taken`.

    Marks the chosen ranges in `taken`. Returns them sorted.
    """
    out: list[tuple[int, int]] = []
    for _ in range(count):
        for _attempt in range(60):
            ln = int(rng.integers(length[0], length[1] + 1))
            if ln >= n:
                continue
            s = int(rng.integers(0, n - ln + 1))
            e = s + ln
            if allowed[s:e].all() and not taken[max(0, s - gap) : e + gap].any():
                taken[s:e] = True
                out.append((s, e))
                break
    return sorted(out)


def _length(dur_s: float, fps: int, lo: float, hi: float, floor: float) -> tuple[int, int]:
    # Short videos get proportionally shorter stretches so that they still hold every feature.
    k = min(1.0, dur_s / 20.0)
    return max(round(floor * fps), round(lo * k * fps)), max(round(floor * fps) + 1, round(hi * k * fps))


def _turns(rng: np.random.Generator, n: int, fps: int) -> np.ndarray:
    who = np.zeros(n, dtype=np.int64)
    t, speaker = 0, int(rng.integers(2))
    while t < n:
        ln = round(rng.uniform(1.5, 5.0) * fps)
        who[t : t + ln] = speaker
        t += ln
        speaker = 1 - speaker
    return who


def _scene(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    low = (rng.random((4, 5, 3)) * 200 + 30).astype(np.uint8)
    img = np.asarray(Image.fromarray(low).resize((width, height), Image.Resampling.BICUBIC)).astype(np.float64)
    for _ in range(int(rng.integers(2, 5))):
        x0, y0 = int(rng.integers(0, width - 8)), int(rng.integers(0, height - 8))
        x1, y1 = x0 + int(rng.integers(8, width // 2)), y0 + int(rng.integers(8, height // 2))
        img[y0:y1, x0:x1] = 0.4 * img[y0:y1, x0:x1] + 0.6 * rng.integers(20, 235, size=3)
    return np.clip(img, 0, 255).astype(np.uint8)


def _texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    colour = _OCCLUDER_COLOURS[int(rng.integers(len(_OCCLUDER_COLOURS)))].astype(np.float64)
    grain = (rng.random((height // 4 + 1, width // 4 + 1)) - 0.5) * 40.0
    grain = np.kron(grain, np.ones((4, 4)))[:height, :width, None]
    return np.clip(colour[None, None, :] + grain, 0, 255).astype(np.uint8)


def _person_track(
    rng: np.random.Generator,
    vs: VideoSpec,
    p: PersonSpec,
    name: str,
    speaking: np.ndarray,
    taken: np.ndarray,
    n_base: int,
) -> PersonTrack:
    n, fps = vs.n_frames, vs.fps
    dur = n / fps
    clean = va_trajectories(rng, n, fps)
    cues = derive_cues(rng, clean, fps)
    labels = annotate(rng, clean, fps, vs.annotation_sd)
    unannotated = place_stretches(
        rng, n, vs.features["unannotated"], _length(dur, fps, 0.6, 3.0, 0.4), np.ones(n, bool), np.zeros(n, bool), 0
    )
    labels[stretches_mask(n, unannotated)] = UNANNOTATED
    state = np.zeros(n, dtype=np.int8)
    mine = taken.copy()  # face events of this person keep clear of the silent stretches (and of each other)
    no_face = place_stretches(rng, n, vs.features["no_face"], _length(dur, fps, 0.5, 2.0, 0.4), speaking, mine, 3)
    state[stretches_mask(n, no_face)] = ABSENT
    occl = place_stretches(rng, n, vs.features["occlusion"], _length(dur, fps, 0.8, 3.0, 0.5), speaking, mine, 3)
    occluded: list[tuple[int, int, str]] = []
    for k, (s, e) in enumerate(occl):
        # The first occlusion of a video hides the lower face, later ones draw the kind.
        kind = "lower" if k == 0 or rng.random() < 0.6 else "whole"
        state[s:e] = LOWER if kind == "lower" else WHOLE
        occluded.append((s, e, kind))
    slot_w = vs.width // 2 if vs.two_person else vs.width
    period = max(1, 2 * n_base - 2)
    phase = (np.arange(n) + int(rng.integers(period))) % period
    base = np.where(phase < n_base, phase, period - phase)
    return PersonTrack(
        spec=p,
        name=name,
        clean=clean,
        labels=labels,
        cues=cues,
        state=state,
        speaking=speaking,
        mouth=np.zeros(n),
        smile_jitter=0.06 * smooth_noise(rng, n, 0.4 * fps),
        rotation=3.0 * smooth_noise(rng, n, 1.0 * fps),
        scale=np.exp(0.05 * smooth_noise(rng, n, 1.5 * fps)),
        shift=np.stack(
            [0.04 * slot_w * smooth_noise(rng, n, 1.2 * fps), 0.03 * vs.height * smooth_noise(rng, n, 1.2 * fps)],
            axis=1,
        ),
        base=base.astype(np.int64),
        unannotated=unannotated,
        occluded=occluded,
        no_face=no_face,
    )


def script_video(spec: VideoSpec, clips: list[SourceClip]) -> VideoScript:
    """Draw every per-frame quantity of a video from its seed (pure: no files).

    Args:
        spec: the plan of the video.
        clips: the source clips (index `PersonSpec.clip`).
    """
    n, fps = spec.n_frames, spec.fps
    dur = n / fps
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(6)]
    rng_plan, rng_voice, rng_light, rng_pic = streams[0], streams[1], streams[2], streams[3]
    taken = np.zeros(n, dtype=bool)
    silent = place_stretches(
        rng_plan, n, spec.features["silent"], _length(dur, fps, 1.0, 4.0, 0.6), np.ones(n, bool), taken, 0
    )
    voiced = ~stretches_mask(n, silent)
    turn = _turns(rng_plan, n, fps) if spec.two_person else np.zeros(n, dtype=np.int64)
    persons = []
    for k, p in enumerate(spec.persons):
        speaking = voiced & (turn == k)
        rng_person = streams[4 + k]
        persons.append(
            _person_track(rng_person, spec, p, spec.annotation_names[k], speaking, taken, len(clips[p.clip].frames))
        )
    # Expression labels from streams of their own, so that drawing them leaves every other draw as it was.
    persons = [replace(tr, expr=expression_labels(np.random.default_rng([*spec.seed, EXPR_STREAM, k]), tr.clean, fps,
                                                  tr.unannotated)) for k, tr in enumerate(persons)]  # fmt: skip
    # Voices: each person's speech plan drives their own mouth; the track mixes them over one background.
    mix = np.zeros(round(n * SAMPLE_RATE / fps))
    tracks = []
    for tr in persons:
        syl = plan_syllables(rng_voice, tr.speaking, tr.cues.arousal_voice, fps)
        speech, env = synthesize_voice(
            rng_voice,
            syl,
            tr.cues.arousal_voice,
            tr.cues.breathiness,
            tr.cues.brightness,
            VoiceParams(tr.spec.base_f0, tr.spec.formant_scale),
            fps,
        )
        mix += speech
        tracks.append(_with_mouth(tr, np.clip(tr.cues.talk_gain * env, 0.0, 1.0)))
    mix += background_noise(rng_voice, mix.shape[0], spec.snr_db)
    audio = finish_mix(mix) if spec.audio == "present" else None
    # Light: slow drifts of gain and gamma, and sometimes a sudden change (a lamp, a cloud).
    gain = np.exp(0.12 * smooth_noise(rng_light, n, 3.0 * fps))
    if rng_light.random() < 0.5:
        at = int(rng_light.integers(n))
        step = float(rng_light.uniform(0.7, 1.3))
        gain *= 1.0 + (step - 1.0) * np.clip((np.arange(n) - at) / (0.25 * fps), 0.0, 1.0)
    gamma = np.exp(0.1 * smooth_noise(rng_light, n, 4.0 * fps))
    return VideoScript(
        spec=spec,
        persons=tuple(tracks),
        audio=audio,
        silent=silent,
        gain=np.clip(gain, 0.55, 1.4),
        gamma=np.clip(gamma, 0.75, 1.35),
        scene=_scene(rng_pic, spec.width, spec.height),
        occluder=_texture(rng_pic, spec.width, spec.height),
    )


def _with_mouth(track: PersonTrack, mouth: np.ndarray) -> PersonTrack:
    return replace(track, mouth=mouth)


_PADDED: dict[str, np.ndarray] = {}


def _padded(clip: SourceClip) -> np.ndarray:
    # Edge-padded copies of the clips, kept per process (a few tens of MB each).
    # The clips' outermost rows hold a dark line (MPEG border): trim 2 px before repeating the edge outwards,
    # keeping coordinates (the pad grows by the trimmed amount).
    if clip.sha256 not in _PADDED:
        core = clip.frames[:, 2:-2, 2:-2]
        _PADDED[clip.sha256] = np.pad(core, ((0, 0), (PAD + 2, PAD + 2), (PAD + 2, PAD + 2), (0, 0)), mode="edge")
    return _PADDED[clip.sha256]


def _occlude(slot: np.ndarray, texture: np.ndarray, lm: np.ndarray, kind: str) -> None:
    D = float(np.linalg.norm(lm[1] - lm[0]))
    eyes_y = float(min(lm[0, 1], lm[1, 1]))
    mouth_y = float(max(lm[3, 1], lm[4, 1]))
    if kind == "lower":
        x0, x1 = min(lm[3, 0], lm[4, 0]) - 0.6 * D, max(lm[3, 0], lm[4, 0]) + 0.6 * D
        y0, y1 = float(lm[2, 1]) + 0.12 * D, mouth_y + 1.0 * D
    else:
        x0, x1 = min(lm[0, 0], lm[1, 0]) - 0.9 * D, max(lm[0, 0], lm[1, 0]) + 0.9 * D
        y0, y1 = eyes_y - 1.0 * D, mouth_y + 1.0 * D
    h, w = slot.shape[:2]
    xa, xb = max(0, int(x0)), min(w, int(np.ceil(x1)))
    ya, yb = max(0, int(y0)), min(h, int(np.ceil(y1)))
    if xa < xb and ya < yb:
        slot[ya:yb, xa:xb] = texture[ya:yb, xa:xb]


def render_frames(script: VideoScript, clips: list[SourceClip]) -> Iterator[tuple[np.ndarray, list[np.ndarray | None]]]:
    """Frames of a video, one at a time, with the landmarks of every face in view.

    Args:
        script: the video's script.
        clips: the source clips.

    Yields:
        (frame (H, W, 3) uint8 RGB, one entry per person: (5, 2) float64 landmarks in the frame where the face is
        shown (SHOWN or LOWER), None where it is not).
    """
    spec = script.spec
    W, H = spec.width, spec.height
    slot_w = W // 2 if spec.two_person else W
    for t in range(spec.n_frames):
        frame = np.empty((H, W, 3), dtype=np.uint8)
        marks: list[np.ndarray | None] = []
        for k, tr in enumerate(script.persons):
            x0 = k * slot_w
            state = int(tr.state[t])
            lut = lighting_lut(float(script.gain[t]), float(script.gamma[t]), np.asarray(tr.spec.tint))
            if state == ABSENT:
                slot = np.ascontiguousarray(script.scene[:, x0 : x0 + slot_w])
                frame[:, x0 : x0 + slot_w] = np.asarray(Image.fromarray(slot).point(lut))
                marks.append(None)
                continue
            clip = clips[tr.spec.clip]
            b = int(tr.base[t])
            lm_src = clip.landmarks[b].astype(np.float64) + PAD
            c = tr.cues
            expr = Expression(
                smile=float(c.smile[t] + tr.smile_jitter[t]),
                brow=float(c.brow[t]),
                knit=float(np.clip(-c.brow_x[t], 0.0, 1.0)),
                eye_open=float(c.eye_open[t]),
                mouth_open=float(tr.mouth[t]),
            )
            img, q = warp_face(_padded(clip)[b], lm_src, expr)
            centre = clip.landmarks.mean(axis=(0, 1)).astype(np.float64) + PAD
            scale = tr.spec.face_px / (FACE_WIDTH_PER_IOD * clip.interocular) * float(tr.scale[t])
            dst = np.array([slot_w / 2.0, H * 0.5]) + tr.shift[t]
            M = similarity(centre, dst, scale, float(tr.rotation[t]), tr.spec.mirror)
            slot, lm = place(img, q, M, (slot_w, H), tr.spec.mirror)
            if state in (LOWER, WHOLE):
                slot = np.array(slot)  # the occluder is in the scene, so the light falls on it too
                _occlude(slot, script.occluder[:, x0 : x0 + slot_w], lm, "lower" if state == LOWER else "whole")
            frame[:, x0 : x0 + slot_w] = np.asarray(Image.fromarray(slot).point(lut))
            lm = lm + np.array([x0, 0.0])
            inside = bool((lm >= 0).all() and (lm[:, 0] < W).all() and (lm[:, 1] < H).all())
            marks.append(lm if state in (SHOWN, LOWER) and inside else None)
        yield frame, marks
