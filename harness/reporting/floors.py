"""Quality floors from measured run-to-run spread: what `harness leaderboard --record` writes and `--check` reads.

A guarded key (e.g. `quick/test/bdca/p_va`) is recorded from several runs of one configuration: training seeds on
the recording machine, and the same configuration under every ATen kernel level of that machine and at 1 and 2
threads. Per key:

- `value`: the mean over all runs. A run on an unseen machine is one more draw of the same kind: a rounding
  difference in stage 1 grows through training much as a change of seed does (docs/numbers.md, "What moves with
  the thread count"), so the mean is the unbiased centre. The seed-0 run would be one draw itself, and the
  distance between two draws has sqrt(2) times the spread of a draw around the mean.
- `spread`: the sample standard deviation over the runs (ddof 1).
- `band`: k x spread, never narrower than `MIN_BAND` nor wider than the cap; floor = value - band, ceiling =
  value + band.

k (`choose_k`) is the larger of two numbers, both from the measured runs: the prediction-interval factor for one new
run of a normal sample of n runs, t(1 - alpha / (2 m), n - 1) x sqrt(1 + 1/n), with alpha shared (Bonferroni) by the
m distinct value series that vary (a score the scores.json repeats under two names, e.g. `quick/fold0/bdca` and
`quick/tableIV/fold0/bdca`, is one test, not two), so that an unchanged pipeline on a new machine trips no key with
probability about 1 - alpha; and the largest leave-one-out deviation actually seen (each run against the mean and
spread of the others, in the same units), so that heavier tails than a normal's widen the band instead of raising
false alarms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import stdtrit

from core.errors import HarnessError
from submissions.leaderboard import BAND_CAP, MIN_BAND

__all__ = ["ALPHA", "MIN_RUNS", "KeyFloor", "Run", "choose_k", "key_floor", "loo_deviation", "measure_floors",
           "prediction_k"]  # fmt: skip

ALPHA = 0.01
"""The false-alarm rate k aims at for an unchanged pipeline, over all guarded keys of one check together."""

MIN_RUNS = 5
"""Fewest runs a spread is measured from (issue 24: at least 5 training seeds)."""


@dataclass(frozen=True)
class Run:
    """One run's scores, and what made it.

    Args:
        name: a label for the run (its folder, e.g. `seed1-native-t1`, or its scores file).
        scores: flat `{key/metric: value}`; `fixture/*` keys are not floors and are ignored.
        seed: its training seed, where known.
        level: its `ATEN_CPU_CAPABILITY` (None: the CPU's native level).
        threads: its torch intra-op threads, where known.
    """

    name: str
    scores: Mapping[str, float]
    seed: int | None = None
    level: str | None = None
    threads: int | None = None

    def to_json(self) -> dict:
        """The run as the recorded leaderboard keeps it (`samples`), at full precision: the spread recomputes."""
        return {"name": self.name, "seed": self.seed, "level": self.level or "native", "threads": self.threads,
                "scores": {k: float(v) for k, v in sorted(self.scores.items()) if not k.startswith("fixture/")}}


@dataclass(frozen=True)
class KeyFloor:
    """A guarded key's recorded band.

    Args:
        value: the mean over the runs.
        spread: their standard deviation (ddof 1).
        runs: how many runs.
        band: the half-width, k x spread within [`MIN_BAND`, cap].
        capped: whether k x spread was wider than the cap.
        guarded: whether the check fails on it: every key that is not capped, and a capped key whose band at the
            cap still keeps its own false-alarm rate within `ALPHA` (cap >= `prediction_k(runs, 1)` x spread); the
            others vary too much to guard and are listed as noisy.
    """

    value: float
    spread: float
    runs: int
    band: float
    capped: bool
    guarded: bool = True

    @property
    def floor(self) -> float:
        return self.value - self.band

    @property
    def ceiling(self) -> float:
        return self.value + self.band

    def to_json(self) -> dict:
        return {"value": self.value, "spread": self.spread, "runs": self.runs, "band": self.band,
                "floor": self.floor, "ceiling": self.ceiling, "capped": self.capped, "guarded": self.guarded}


def prediction_k(n: int, keys: int, alpha: float = ALPHA) -> float:
    """The normal prediction-interval factor for one new run: t(1 - alpha / (2 keys), n - 1) x sqrt(1 + 1/n).

    Args:
        n: runs the spread was measured from (>= 2).
        keys: keys sharing `alpha` (Bonferroni; >= 1).
        alpha: the false-alarm rate over all keys together.
    """
    if n < 2 or keys < 1 or not 0 < alpha < 1:
        raise HarnessError(f"prediction_k: needs n >= 2, keys >= 1 and 0 < alpha < 1 (got {n}, {keys}, {alpha})")
    return float(stdtrit(n - 1, 1 - alpha / (2 * keys)) * math.sqrt(1 + 1 / n))


def loo_deviation(values: Sequence[float]) -> float:
    """The largest deviation of one run from the others, in units of their spread: max over i of
    |x_i - mean(x_-i)| / (std(x_-i) x sqrt(1 + 1/(n - 1))), the quantity `prediction_k` bounds.

    Runs whose others agree exactly (std 0) are skipped: no multiple of a zero spread is defined, and `MIN_BAND`
    is what such a key gets. 0.0 for fewer than 3 runs or when every leave-one-out spread is 0.
    """
    x = np.asarray(values, dtype=float)
    n = x.size
    worst = 0.0
    if n < 3:
        return worst
    for i in range(n):
        rest = np.delete(x, i)
        sd = float(rest.std(ddof=1))
        if sd > 0:
            worst = max(worst, abs(float(x[i]) - float(rest.mean())) / (sd * math.sqrt(1 + 1 / rest.size)))
    return worst


def choose_k(values: Mapping[str, Sequence[float]], alpha: float = ALPHA) -> tuple[float, str]:
    """k for a recording, and the reasoning in words with its numbers (written into the file's notes).

    Args:
        values: per key, its value in every run.
        alpha: the false-alarm rate over all keys together.

    Returns:
        (k, reason); k is the larger of `prediction_k` over the keys that vary and the largest `loo_deviation`.
    """
    varying = {key: v for key, v in values.items() if float(np.std(v)) > 0}
    n = min((len(v) for v in values.values()), default=0)
    if n < 2:
        raise HarnessError(f"choose_k: a spread needs at least 2 runs per key (got {n})")
    if not varying:
        return 0.0, (f"no key varies over the {n} runs: every band is the minimum, {MIN_BAND:g}")
    m = len({tuple(float(x) for x in v) for v in varying.values()})
    k_t = prediction_k(n, m, alpha)
    worst_key, worst = max(((key, loo_deviation(v)) for key, v in varying.items()), key=lambda kv: kv[1])
    k = max(k_t, worst)
    reason = (f"k = {k:.3f}: the larger of the normal prediction factor for one new run, t(1 - {alpha:g}/(2 x {m}), "
              f"{n - 1}) x sqrt(1 + 1/{n}) = {k_t:.3f} ({len(varying)} of {len(values)} keys vary over the {n} runs, "
              f"as {m} distinct value series sharing alpha {alpha:g}), and the largest leave-one-out deviation "
              f"measured, {worst:.3f} (a run of {worst_key} against the mean and spread of the others)")
    return k, reason


def key_floor(values: Sequence[float], k: float, cap: float = BAND_CAP) -> KeyFloor:
    """A key's band from its values over the runs: mean, std (ddof 1), band = k x std within [`MIN_BAND`, cap].

    Args:
        values: the key's value in every run (>= 2, all finite).
        k: the recording's factor (`choose_k`).
        cap: the widest band.

    Raises:
        HarnessError: fewer than 2 values, a non-finite one, or a cap below `MIN_BAND`.
    """
    x = np.asarray(values, dtype=float)
    if x.size < 2 or not np.all(np.isfinite(x)):
        raise HarnessError(f"key_floor: needs at least 2 finite values (got {x.tolist()})")
    if cap < MIN_BAND:
        raise HarnessError(f"the band cap {cap:g} is below the smallest band, {MIN_BAND:g}")
    spread = float(x.std(ddof=1))
    raw = k * spread
    # At the cap, a capped key's own chance of a false alarm is within ALPHA when the cap is at least the one-key
    # prediction factor times its spread; the recording's k shares ALPHA among all keys, so it is wider.
    guarded = raw <= cap or cap >= prediction_k(int(x.size), 1) * spread
    return KeyFloor(float(x.mean()), spread, int(x.size), min(cap, max(MIN_BAND, raw)), raw > cap, guarded)


def measure_floors(runs: Sequence[Run], cap: float = BAND_CAP,
                   alpha: float = ALPHA) -> tuple[dict[str, KeyFloor], float, str]:  # fmt: skip
    """Floors for every run key the runs share, from their values over all runs.

    Args:
        runs: at least `MIN_RUNS` runs of one configuration; every run must hold every key of the others.
        cap: the widest band.
        alpha: the false-alarm rate over all keys together (`choose_k`).

    Returns:
        ({key: KeyFloor}, k, the reasoning for k).

    Raises:
        HarnessError: too few runs, runs with different keys (named), or a non-finite score (named).
    """
    if len(runs) < MIN_RUNS:
        raise HarnessError(f"a spread needs at least {MIN_RUNS} runs (training seeds); got {len(runs)}: "
                           + ", ".join(r.name for r in runs))  # fmt: skip
    keysets = [{k for k in r.scores if not k.startswith("fixture/")} for r in runs]
    keys = set.union(*keysets)
    for r, ks in zip(runs, keysets, strict=True):
        if ks != keys:
            missing = sorted(keys - ks)
            raise HarnessError(f"{r.name}: error: lacks {len(missing)} key(s) the other runs hold "
                               f"({', '.join(missing[:5])}); record runs of one configuration")  # fmt: skip
        bad = sorted(k for k in ks if not math.isfinite(float(r.scores[k])))
        if bad:
            raise HarnessError(f"{r.name}: error: non-finite score(s) {', '.join(bad[:5])}; nothing recorded")
    if not keys:
        raise HarnessError("the runs hold no run scores to record (only fixture/* keys)")
    values = {key: [float(r.scores[key]) for r in runs] for key in sorted(keys)}
    k, reason = choose_k(values, alpha)
    return {key: key_floor(v, k, cap) for key, v in values.items()}, k, reason
