"""From clean valence/arousal to what the face shows and what the voice carries.

The split is built so that fusion matters (paper III.D: the cross-modal attention should earn its keep):

- Valence is mostly visible: the smile (mouth corners up and out, or down) carries `V - I`, where `I` is the
  interaction term below. The voice carries valence only weakly, through breathiness (negative valence breathier).
- Arousal is mostly audible: pitch level, pitch range, loudness and tempo follow it. The face carries it weakly:
  eye opening, a share of the brow height, and how wide the mouth opens while talking.
- Interaction: `I = w * x * y`, with `x` the brow cue (raised > 0, knitted < 0) and `y` the voice's brightness
  (spectral tilt, bright > 0, dark < 0), both smooth, zero-mean and independent of everything else. Raised brows
  with a bright voice read as pleasant surprise, with a dark voice as alarm. Neither cue alone says anything about
  the sign of `I` (E[I | x] = E[I | y] = 0), so only a model that sees both can recover that share of valence.

Everything is a pure function of the clean curves and a numpy Generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from preprocessing.corpus.labels import smooth_noise

INTERACTION_WEIGHT = 0.45
"""w in I = w * x * y (valence units)."""


@dataclass(frozen=True)
class Cues:
    """Per-frame rendering cues of one person, every array (N,) float64.

    Args:
        smile: mouth-corner cue in about [-1, 1] (valence minus the interaction term).
        brow: brow height in about [-1, 1] (interaction cue x plus a share of arousal).
        brow_x: the interaction cue x alone, in [-1, 1].
        eye_open: eye opening cue in [-1, 1] (arousal).
        talk_gain: how wide the mouth opens per syllable, in [0.3, 1] (arousal).
        arousal_voice: the arousal the voice follows (pitch, range, loudness, tempo), in [-1, 1].
        breathiness: aspiration share of the voice, in [0.05, 0.6] (valence, weakly).
        brightness: the interaction cue y, the voice's spectral tilt, in [-1, 1].
        interaction: I = w * x * y, the share of valence only the two modalities together reveal.
    """

    smile: np.ndarray
    brow: np.ndarray
    brow_x: np.ndarray
    eye_open: np.ndarray
    talk_gain: np.ndarray
    arousal_voice: np.ndarray
    breathiness: np.ndarray
    brightness: np.ndarray
    interaction: np.ndarray


def _bounded_cue(rng: np.random.Generator, n: int, fps: float) -> np.ndarray:
    # tanh keeps the cue in (-1, 1); its sd is about 0.6 with this gain.
    return np.tanh(0.9 * smooth_noise(rng, n, 1.2 * fps))


def derive_cues(
    rng: np.random.Generator, clean: np.ndarray, fps: float, interaction_weight: float = INTERACTION_WEIGHT
) -> Cues:
    """The rendering cues of one person.

    Args:
        rng: random source (draws the interaction cues x and y).
        clean: (N, 2) clean valence and arousal.
        fps: frame rate.
        interaction_weight: w in I = w * x * y.
    """
    n = clean.shape[0]
    v, a = clean[:, 0], clean[:, 1]
    x = _bounded_cue(rng, n, fps)
    y = _bounded_cue(rng, n, fps)
    interaction = interaction_weight * x * y
    return Cues(
        smile=v - interaction,
        brow=np.clip(0.7 * x + 0.3 * a, -1.0, 1.0),
        brow_x=x,
        eye_open=a,
        talk_gain=0.3 + 0.35 * (a + 1.0),
        arousal_voice=a,
        breathiness=np.clip(0.3 - 0.25 * v, 0.05, 0.6),
        brightness=y,
        interaction=interaction,
    )
