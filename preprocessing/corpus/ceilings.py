"""Modality ceilings: the best CCC a predictor that sees only the face, or only hears the voice, could reach.

The generator knows which cue carries what (`preprocessing.corpus.cues`) and on which frames each modality can see
a person (`preprocessing.corpus.render`), so it can score ideal one-modality readers against the label files, the
way `manifest.ORACLE_MEANING`'s oracle scores the clean latent:

- visual: where the mouth is in view (face SHOWN, not behind a lower-face patch) the reader reads valence as the
  smile the face is rendered with, `V - I + smile jitter` (the interaction share `I = w x y` needs the voice's
  brightness y, and the jitter is part of the rendered expression); where the eyes are in view (SHOWN or LOWER)
  it reads arousal exactly from the eye opening. Nuisances of pose, light and compression are ignored, as for the
  oracle.
- audio: where the person's own voice sounds (frames of their syllables: never in silent stretches, never in the
  video without a track, and in a two-person video only in that person's turns) the reader reads arousal exactly
  from the prosody and valence exactly from the breathiness (0.3 - 0.25 V, inverted). It is told whose voice it
  hears (the two voices of a two-person video differ in pitch and timbre); a model fed only the shared track
  gives both people one prediction and can score below this. Background noise and AAC are ignored.

Between frames where a dimension is seen, both readers interpolate linearly; before the first and after the last
they hold the nearest value; a person never seen by a modality gets the Train split's mean clean value (a
constant a model can learn). Everything here is pure.
"""

from __future__ import annotations

import numpy as np

from preprocessing.corpus.manifest import OracleScore
from preprocessing.corpus.render import LOWER, SHOWN, VideoScript
from submissions.metrics import score_va

MODALITIES = ("audio", "visual")
"""Keys of `modality_views`."""


def interpolate_hidden(values: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """`values` where `seen`, linear interpolation between seen frames, the nearest seen value beyond them.

    Args:
        values: (N,) per-frame values (only the seen ones are read).
        seen: (N,) bool, frames where the value is observed.

    Returns:
        (N,) float64; all NaN when no frame is seen.
    """
    values = np.asarray(values, dtype=np.float64)
    seen = np.asarray(seen, dtype=bool)
    if values.shape != seen.shape or values.ndim != 1:
        raise ValueError(f"values {values.shape} and seen {seen.shape} must be the same 1-D shape")
    if not seen.any():
        return np.full(values.shape, np.nan)
    idx = np.flatnonzero(seen)
    return np.interp(np.arange(values.shape[0]), idx, values[idx])  # np.interp holds the end values


def modality_views(script: VideoScript) -> dict[str, dict[str, np.ndarray]]:
    """What the ideal visual and audio readers predict for each person of a video (see the module docstring).

    Args:
        script: the video's script (`render.script_video`).

    Returns:
        modality ("audio", "visual") -> annotation name -> (N, 2) predicted valence and arousal; NaN throughout
        for a person the modality never sees (filled later with the Train mean by `ceiling_scores`).
    """
    has_track = script.audio is not None
    out: dict[str, dict[str, np.ndarray]] = {m: {} for m in MODALITIES}
    for tr in script.persons:
        c = tr.cues
        mouth_seen = tr.state == SHOWN
        eyes_seen = tr.state <= LOWER
        out["visual"][tr.name] = np.stack(
            [interpolate_hidden(c.smile + tr.smile_jitter, mouth_seen), interpolate_hidden(c.eye_open, eyes_seen)],
            axis=1,
        )
        # The mouth opens with this person's own syllable envelope (talk_gain >= 0.3), so mouth > 0 marks exactly
        # the frames where their voice sounds.
        heard = (tr.mouth > 0) & has_track
        out["audio"][tr.name] = np.stack(
            [interpolate_hidden((0.3 - c.breathiness) / 0.25, heard), interpolate_hidden(c.arousal_voice, heard)],
            axis=1,
        )
    return out


def fill_unseen(pred: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """`pred` with NaN entries replaced by the per-column `prior` ((2,) valence, arousal)."""
    return np.where(np.isnan(pred), np.asarray(prior, dtype=np.float64)[None, :], pred)


def ceiling_scores(
    videos: list[tuple[str, dict[str, np.ndarray], dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]],
    splits: tuple[str, ...] = ("Train", "Validation", "Test"),
) -> dict[str, dict[str, OracleScore]]:
    """The visual and audio ceilings per split and over all splits, scored as the oracle is.

    Args:
        videos: one (split, labels, views, clean) per video: annotation name -> (N, 2) labels as written,
            `modality_views` of the video, and annotation name -> (N, 2) clean latent (for the Train prior).
        splits: split names, in reporting order.

    Returns:
        modality -> split name (and "all") -> the ideal one-modality reader's CCC against the labels.
    """
    train = [clean[n] for split, _, _, clean in videos if split == "Train" for n in clean]
    prior = np.concatenate(train).mean(axis=0) if train else np.zeros(2)
    out: dict[str, dict[str, OracleScore]] = {m: {} for m in MODALITIES}
    for modality in MODALITIES:
        for split in (*splits, "all"):
            chosen = [(labels, views) for s, labels, views, _ in videos if split in ("all", s)]
            if not chosen:
                continue
            lab = np.concatenate([labels[n] for labels, _ in chosen for n in labels])
            pred = np.concatenate([fill_unseen(views[modality][n], prior) for labels, views in chosen for n in labels])
            s = score_va(lab, pred)
            out[modality][split] = OracleScore(round(s.ccc_v, 6), round(s.ccc_a, 6), round(s.p_va, 6), s.frames)
    return out
