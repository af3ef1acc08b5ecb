"""A small source-filter speech synthesiser whose prosody and voice quality follow affect.

Speech here is babble: consonant-vowel syllables with no words, the way a listener hears a language they do not
know, which is what the affect cues need. Each syllable is a glottal pulse train (Rosenberg pulse, lip radiation
as a first difference) shaped by a cascade of three formant resonators (Klatt's second-order sections) for one of
six vowels, after a short fricative or plosive burst. What follows affect (see `preprocessing.corpus.cues`):

- arousal: pitch level (+-5 semitones), pitch range (2-7 semitones of accent), loudness (+-7 dB) and tempo
  (1.6-4.8 syllables per second);
- valence: breathiness (aspiration noise mixed into the source), weakly;
- the interaction cue y: brightness, a cross-fade between a bright source (the flow derivative, pre-emphasised)
  and a dark one (low-passed near 270 Hz): about 20 dB of spectral tilt between 500 Hz and 3 kHz.

The neutral speaking level is normalised per voice (RMS 0.08 at arousal 0), so loudness differences across frames
carry arousal and nothing else. Background noise is pink-ish and stationary, at a fixed SNR per video relative to
that neutral level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from preprocessing.corpus.labels import smooth_noise

SAMPLE_RATE = 16000
"""Audio sample rate of the corpus (Hz)."""

NEUTRAL_RMS = 0.08
"""RMS of speech at arousal 0 (about -22 dBFS)."""

# F1, F2, F3 (Hz) of six vowels (a, e, i, o, u, schwa) for an adult voice.
VOWELS = np.array(
    [
        [730.0, 1090.0, 2440.0],
        [530.0, 1840.0, 2480.0],
        [300.0, 2250.0, 2950.0],
        [570.0, 840.0, 2410.0],
        [320.0, 900.0, 2240.0],
        [500.0, 1500.0, 2500.0],
    ]
)
BANDWIDTHS = np.array([80.0, 100.0, 130.0])


@dataclass(frozen=True)
class VoiceParams:
    """Who speaks.

    Args:
        base_f0: pitch at arousal 0 (Hz).
        formant_scale: vocal-tract scaling of the formants (shorter tract > 1).
    """

    base_f0: float
    formant_scale: float


@dataclass(frozen=True)
class Syllables:
    """A speech plan: one row per syllable, times in seconds.

    Args:
        start: onset of each syllable, shape (S,).
        duration: length of each syllable, shape (S,).
        vowel: vowel index into `VOWELS`, shape (S,).
        consonant: 0 none, 1 fricative, 2 plosive, shape (S,).
        accent: pitch accent in [-1, 1], shape (S,).
        stress_db: loudness of the syllable relative to its neighbours, shape (S,).
        phrase: index of the phrase each syllable belongs to, shape (S,).
    """

    start: np.ndarray
    duration: np.ndarray
    vowel: np.ndarray
    consonant: np.ndarray
    accent: np.ndarray
    stress_db: np.ndarray
    phrase: np.ndarray

    def __len__(self) -> int:
        return int(self.start.shape[0])


def syllable_rate(arousal: np.ndarray | float) -> np.ndarray | float:
    """Syllables per second at a given arousal: 3.2 + 1.6 a."""
    return 3.2 + 1.6 * np.asarray(arousal)


def plan_syllables(rng: np.random.Generator, allowed: np.ndarray, arousal: np.ndarray, fps: float) -> Syllables:
    """Phrases of syllables wherever speech is allowed.

    Args:
        rng: random source.
        allowed: (N,) bool per video frame: False in silent stretches (and in the other person's turns).
        arousal: (N,) arousal per frame, sets the tempo.
        fps: frame rate.
    """
    n = allowed.shape[0]
    rows: list[tuple[float, float, int, int, float, float, int]] = []
    t = rng.uniform(0.0, 0.4)
    end_s = n / fps
    phrase = 0
    while t < end_s:
        f = int(t * fps)
        if not allowed[min(f, n - 1)]:
            t += 1.0 / fps
            continue
        # The phrase ends at its drawn length or where speech stops being allowed, whichever comes first.
        stop = t + rng.uniform(1.0, 3.5)
        blocked = np.flatnonzero(~allowed[f:])
        if blocked.size:
            stop = min(stop, (f + blocked[0]) / fps)
        stop = min(stop, end_s)
        while True:
            a = float(arousal[min(int(t * fps), n - 1)])
            dur = float(rng.uniform(0.75, 1.25) / syllable_rate(a))
            if t + dur > stop:
                break
            rows.append(
                (
                    t,
                    dur,
                    int(rng.integers(0, len(VOWELS))),
                    int(rng.choice(3, p=[0.3, 0.4, 0.3])),
                    float(rng.uniform(-1.0, 1.0)),
                    float(rng.uniform(-2.0, 2.0)),
                    phrase,
                )
            )
            t += dur
        phrase += 1
        t = max(t, stop) + rng.uniform(0.15, 0.8)
    cols = list(zip(*rows, strict=True)) if rows else [()] * 7
    return Syllables(
        start=np.asarray(cols[0], dtype=np.float64),
        duration=np.asarray(cols[1], dtype=np.float64),
        vowel=np.asarray(cols[2], dtype=np.int64),
        consonant=np.asarray(cols[3], dtype=np.int64),
        accent=np.asarray(cols[4], dtype=np.float64),
        stress_db=np.asarray(cols[5], dtype=np.float64),
        phrase=np.asarray(cols[6], dtype=np.int64),
    )


def _resonator(freq: float, bw: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    # Klatt (1980) second-order section with unity gain at 0 Hz.
    r = np.exp(-np.pi * bw / sr)
    c = -(r**2)
    b = 2.0 * r * np.cos(2.0 * np.pi * freq / sr)
    return np.array([1.0 - b - c]), np.array([1.0, -b, -c])


def _cascade(freqs: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    num, den = np.array([1.0]), np.array([1.0])
    for f, bw in zip(freqs, BANDWIDTHS, strict=True):
        bk, ak = _resonator(float(f), float(bw), sr)
        num, den = np.convolve(num, bk), np.convolve(den, ak)
    return num, den


def _rosenberg(phase_frac: np.ndarray, open_quotient: float = 0.6) -> np.ndarray:
    # Opening phase rises as a half cosine over 2/3 of the open phase, closing falls as a quarter cosine.
    tp = open_quotient * 2.0 / 3.0
    tn = open_quotient - tp
    g = np.zeros_like(phase_frac)
    rising = phase_frac < tp
    g[rising] = 0.5 * (1.0 - np.cos(np.pi * phase_frac[rising] / tp))
    falling = (phase_frac >= tp) & (phase_frac < open_quotient)
    g[falling] = np.cos(0.5 * np.pi * (phase_frac[falling] - tp) / tn)
    return g


def _unit_rms(x: np.ndarray) -> np.ndarray:
    r = float(np.sqrt(np.mean(x**2)))
    return x / r if r > 0 else x


def _per_sample(values: np.ndarray, fps: float, n_samples: int, sr: int) -> np.ndarray:
    t_frames = (np.arange(values.shape[0]) + 0.5) / fps
    return np.interp(np.arange(n_samples) / sr, t_frames, values)


def synthesize_voice(
    rng: np.random.Generator,
    syllables: Syllables,
    arousal: np.ndarray,
    breathiness: np.ndarray,
    brightness: np.ndarray,
    voice: VoiceParams,
    fps: float,
    sr: int = SAMPLE_RATE,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one voice.

    Args:
        rng: random source (noise of the source, the bursts and the pitch jitter).
        syllables: the speech plan.
        arousal: (N,) per video frame.
        breathiness: (N,) per video frame, aspiration share in [0, 1].
        brightness: (N,) per video frame, in [-1, 1].
        voice: the speaker.
        fps: video frame rate.
        sr: audio sample rate.

    Returns:
        speech (n_samples,) float64 with n_samples = round(N * sr / fps), and the mouth opening envelope per video
        frame (N,) in [0, 1] (how open the mouth is while the vowels sound).
    """
    n_frames = arousal.shape[0]
    n = round(n_frames * sr / fps)
    a_s = _per_sample(arousal, fps, n, sr)
    breath_s = _per_sample(breathiness, fps, n, sr)
    bright_w = 0.5 * (1.0 + _per_sample(brightness, fps, n, sr))

    # Pitch: level and accent range follow arousal; each phrase declines by 2 semitones.
    accent = np.zeros(n)
    decl = np.zeros(n)
    for ph in np.unique(syllables.phrase):
        sel = syllables.phrase == ph
        s0 = int(syllables.start[sel][0] * sr)
        s1 = min(n, int((syllables.start[sel][-1] + syllables.duration[sel][-1]) * sr))
        if s1 > s0:
            decl[s0:s1] = np.linspace(1.0, -1.0, s1 - s0)
    for st, du, ac in zip(syllables.start, syllables.duration, syllables.accent, strict=True):
        s0, s1 = int(st * sr), min(n, int((st + du) * sr))
        if s1 > s0:
            accent[s0:s1] += ac * np.sin(np.linspace(0.0, np.pi, s1 - s0))
    semitones = 5.0 * a_s + (2.0 + 2.5 * (a_s + 1.0)) * accent + decl
    semitones += 0.15 * np.interp(np.arange(n), np.arange(0, n, 80), smooth_noise(rng, -(-n // 80), 3.0))
    f0 = voice.base_f0 * 2.0 ** (semitones / 12.0)
    phase = np.cumsum(f0 / sr)
    glottal = _rosenberg(phase % 1.0)
    flow_derivative = np.diff(glottal, prepend=0.0)
    bright = _unit_rms(lfilter([1.0, -0.7], [1.0], flow_derivative))
    dark = _unit_rms(lfilter([0.1], [1.0, -0.9], flow_derivative))
    aspiration = _unit_rms(lfilter([0.5], [1.0, -0.5], rng.standard_normal(n)) * (0.3 + 0.7 * glottal))
    # Aspiration rides on the voiced source at half the breathiness: enough to hear, not enough to mask its tilt.
    source = bright_w * bright + (1.0 - bright_w) * dark + 0.5 * breath_s * aspiration

    speech = np.zeros(n)
    envelope = np.zeros(n)
    tail = int(0.03 * sr)
    for st, du, vw, cons, stress in zip(
        syllables.start, syllables.duration, syllables.vowel, syllables.consonant, syllables.stress_db, strict=True
    ):
        s0 = int(st * sr)
        s1 = min(n, int((st + du) * sr))
        if s1 - s0 < 32:
            continue
        c_len = 0 if cons == 0 else int((0.22 if cons == 1 else 0.12) * (s1 - s0))
        gain = 10.0 ** (stress / 20.0)
        # Consonant: a fricative hiss (resonance near 4.5 kHz) or a plosive burst after a short closure.
        if c_len:
            noise = rng.standard_normal(c_len)
            if cons == 1:
                b, a = _resonator(4500.0 * voice.formant_scale, 2500.0, sr)
                burst = lfilter(b, a, np.diff(noise, prepend=0.0)) * np.hanning(c_len) * 0.3
            else:
                burst = np.zeros(c_len)
                k = max(4, c_len // 3)
                burst[-k:] = np.diff(noise[-k:], prepend=0.0) * np.exp(-np.arange(k) / (k / 3.0)) * 0.5
            speech[s0 : s0 + c_len] += gain * burst
        v0 = s0 + c_len
        v_len = s1 - v0
        att, rel = min(int(0.025 * sr), v_len // 3), min(int(0.04 * sr), v_len // 3)
        env = np.ones(v_len)
        env[:att] = np.linspace(0.0, 1.0, att)
        env[v_len - rel :] = np.linspace(1.0, 0.0, rel)
        e1 = min(n, s1 + tail)
        excitation = np.zeros(e1 - v0)
        excitation[:v_len] = source[v0:s1] * env
        num, den = _cascade(VOWELS[vw] * voice.formant_scale, sr)
        # A unity-gain cascade loses the highs of real vowels; a first difference (0.9) restores them.
        vowel = lfilter([1.0, -0.9], [1.0], lfilter(num, den, excitation))
        speech[v0:e1] += gain * _unit_rms(vowel) * np.sqrt(np.mean(env**2))
        envelope[v0:s1] = np.maximum(envelope[v0:s1], env)

    # Neutral level per voice, then loudness follows arousal sample by sample.
    voiced = envelope > 0.5
    rms = float(np.sqrt(np.mean(speech[voiced] ** 2))) if voiced.any() else 0.0
    if rms > 0:
        speech *= NEUTRAL_RMS / rms
    speech *= 10.0 ** (7.0 * a_s / 20.0)
    hop = sr / fps
    edges = np.round(np.arange(n_frames + 1) * hop).astype(np.int64)
    mouth = np.add.reduceat(envelope, edges[:-1]) / np.diff(edges)  # (N,) mean envelope per frame
    return speech, np.clip(mouth, 0.0, 1.0)


def background_noise(rng: np.random.Generator, n_samples: int, snr_db: float) -> np.ndarray:
    """Stationary pink-ish noise whose RMS sits `snr_db` below the neutral speech level."""
    white = rng.standard_normal(n_samples)
    pink = _unit_rms(lfilter([1.0], [1.0, -0.95], white))
    return pink * NEUTRAL_RMS * 10.0 ** (-snr_db / 20.0)


def finish_mix(signal: np.ndarray) -> np.ndarray:
    """Soft-limit a mix into (-1, 1) as float32 (tanh only bends the rare peaks above about 0.5)."""
    return (0.95 * np.tanh(signal / 0.95)).astype(np.float32)
