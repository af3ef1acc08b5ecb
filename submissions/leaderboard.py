"""The paper's tables as data, leaderboards beside the field, and the recorded leaderboard that CI guards.

`data/paper_tables.csv` holds Tables I-IV of the BDCA paper (Liang et al., "Enhancing Audio-Visual Affective
Analysis via Bidirectional Dynamic Cross-Modal Attention and Masked Autoencoding"), one row per line with its source.
`recorded_leaderboard.json` holds the scores of configurations this project runs itself (the quick demo's folds and
ablations, and a fixed scoring fixture): per guarded key its value, measured spread, floor and ceiling
(`harness.reporting.floors` measures them); `check_recorded` says which keys dropped below their floor or rose above
their
ceiling, on any machine.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from core.atomic import atomic_write_text
from core.errors import HarnessError
from core.safe_read import read_json
from submissions.scoring import score_predictions

RECORDED_PATH = Path(__file__).with_name("recorded_leaderboard.json")


@dataclass(frozen=True)
class Entry:
    """One row of a leaderboard.

    Args:
        name: the method, fold or configuration.
        ccc_v: valence CCC.
        ccc_a: arousal CCC.
        p_va: (ccc_v + ccc_a) / 2.
        source: where the number comes from (a citation, or a run folder).
        group: what the row is: test, validation, ablation or oracle for ours (`GROUPS`); empty for the paper's.
        bounds: metric (ccc_v, ccc_a, p_va) -> (low, high) of its bootstrap interval, where known.
    """

    name: str
    ccc_v: float
    ccc_a: float
    p_va: float
    source: str
    group: str = ""
    bounds: dict[str, tuple[float, float]] | None = None


def paper_table() -> pl.DataFrame:
    """All rows of the paper's Tables I-IV (columns table,row,valence,arousal,average,source)."""
    text = resources.files("submissions").joinpath("data/paper_tables.csv").read_text(encoding="utf-8")
    from io import StringIO

    return pl.read_csv(StringIO(text))


def paper_rows(table: str) -> list[Entry]:
    """The rows of one paper table ("I", "II", "III" or "IV") as entries."""
    df = paper_table().filter(pl.col("table") == table)
    if df.height == 0:
        raise HarnessError(f"no paper table {table!r}; known: I, II, III, IV")
    return [Entry(r["row"], r["valence"], r["arousal"], r["average"], r["source"]) for r in df.iter_rows(named=True)]


GROUPS = ("test", "validation", "ablation", "oracle")
"""The groups of our rows, in the order a leaderboard shows them (the paper's rows follow)."""


def leaderboard(entries: list[Entry], table: str = "II", reference: str = "BDCA") -> pl.DataFrame:
    """Our entries, grouped, then the paper's rows of `table`; each group sorted by P_VA, with the delta to the
    paper's `reference` row.

    Groups: ours in `GROUPS` order (an entry without a group is `validation`; unknown groups follow the known
    ones), then `paper Table <table>`. `rank` counts within a group; `*_low`/`*_high` hold interval bounds (NaN
    where unknown).

    Returns a table with columns group, rank, name, valence, valence_low, valence_high, arousal, arousal_low,
    arousal_high, average, average_low, average_high, delta, source, ours.
    """
    paper = paper_rows(table)
    ref = next((e for e in paper if e.name == reference), None)
    ours = [(e.group or "validation", e) for e in entries]
    order = {g: i for i, g in enumerate(GROUPS)}
    extra = sorted({g for g, _ in ours if g not in order})
    order.update({g: len(GROUPS) + i for i, g in enumerate(extra)})
    paper_group = f"paper Table {table}"
    order[paper_group] = len(order)
    rows = [(g, e, True) for g, e in ours] + [(paper_group, e, False) for e in paper]
    rows.sort(key=lambda r: (order[r[0]], -r[1].p_va if np.isfinite(r[1].p_va) else np.inf, r[1].name))
    ranks, seen = [], {}
    for g, _, _ in rows:
        seen[g] = seen.get(g, 0) + 1
        ranks.append(seen[g])
    nan = float("nan")

    def bound(e: Entry, m: str, i: int) -> float:
        return float(e.bounds[m][i]) if e.bounds and m in e.bounds and e.bounds[m][i] is not None else nan

    cols: dict[str, list] = {"group": [g for g, _, _ in rows], "rank": ranks, "name": [e.name for _, e, _ in rows]}
    for col, m in (("valence", "ccc_v"), ("arousal", "ccc_a"), ("average", "p_va")):
        cols[col] = [float(getattr(e, m)) for _, e, _ in rows]
        cols[f"{col}_low"] = [bound(e, m, 0) for _, e, _ in rows]
        cols[f"{col}_high"] = [bound(e, m, 1) for _, e, _ in rows]
    cols["delta"] = [e.p_va - ref.p_va if ref else nan for _, e, _ in rows]
    cols["source"] = [e.source for _, e, _ in rows]
    cols["ours"] = [o for _, _, o in rows]
    return pl.DataFrame(cols)


def table_markdown(df: pl.DataFrame, floats: int = 3) -> str:
    """A Markdown table of a polars frame (floats rounded)."""
    cols = df.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.iter_rows():
        cells = [f"{x:.{floats}f}" if isinstance(x, float) else str(x) for x in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# The recorded leaderboard (CI regression check)
# ---------------------------------------------------------------------------------------------------------------


def scoring_fixture(seed: int = 2025, videos: int = 7, frames: int = 400) -> tuple[dict, dict]:
    """A fixed, seeded pair (labels, predictions) in ABAW shape, with -5 stretches: the CI guards its score.

    Labels are smooth trajectories; predictions are the labels smoothed, scaled and shifted plus noise, so that
    every term of CCC (correlation, scale, bias) matters and a change of formula moves the score.
    """
    rng = np.random.default_rng(seed)
    labels, preds = {}, {}
    t = np.arange(frames) / 25.0
    for k in range(videos):
        phase = rng.uniform(0, 2 * np.pi, size=2)
        lab = np.stack([0.3 + 0.5 * np.sin(0.4 * t + phase[0]), 0.2 + 0.4 * np.sin(0.25 * t + phase[1])], axis=1)
        lab = np.clip(lab + 0.05 * rng.standard_normal(lab.shape), -1, 1)
        pred = np.clip(0.8 * lab + 0.1 + 0.15 * rng.standard_normal(lab.shape), -1, 1)
        start = int(rng.integers(0, frames - 50))
        lab[start : start + 30] = -5.0
        labels[f"fixture_{k:02d}"] = lab
        preds[f"fixture_{k:02d}"] = pred
    if videos > 1:
        labels["fixture_00_left"], preds["fixture_00_left"] = labels.pop("fixture_00"), preds.pop("fixture_00")
    return labels, preds


def fixture_scores() -> dict[str, float]:
    """The scores the CI guards for the scoring fixture (global CCC over all frames, -5 dropped)."""
    labels, preds = scoring_fixture()
    s = score_predictions(preds, labels, "scoring fixture").total
    return {"fixture/ccc_v": s.ccc_v, "fixture/ccc_a": s.ccc_a, "fixture/p_va": s.p_va}


EXACT = 1e-6
"""How far the recorded reference run (seed 0, native, 1 thread) may move on the platform that recorded it: the
pipeline is deterministic there (`tests/test_determinism.py` compares it so); the check itself reads floors."""

FIXTURE_TOLERANCE = 1e-9
"""The scoring fixture is pure numpy in float64: it must hold to this on every machine, both ways."""

MIN_BAND = 1e-6
"""The narrowest band: a key that no run moved (a corpus ceiling, a score of numpy-only arithmetic) may still move by
the rounding of its printed digits."""

BAND_CAP = 0.25
"""The widest band, in score units (CCC): a quarter of the span between chance (0) and a perfect score (1). A key
whose measured k x spread exceeds it is recorded with `capped: true` and this band: a guard that let a CCC fall by
more than 0.25 would guard nothing (issue 24 measured bands of 0.46 and 0.75 that passed planted regressions). A
capped key stays guarded (`guarded: true`) only while the cap keeps its own false-alarm rate within the recording's
alpha; one that varies more (two of the eight recorded runs of df13593 left the capped band of the baseline's CCC_A)
is `guarded: false`: the check lists it as `noisy`, with its value, and never fails on it."""

BAND_FACTOR = 5.0
"""Format 1 only (recordings before quality floors): its band was this many times the key's range over the
recording machine's kernel levels; `load_recorded` reads such a file with these bands (capped at `BAND_CAP`)."""

FORMAT = 2
"""The recorded leaderboard's layout version (`load_recorded`); a file without `format` is format 1."""

STATUSES = ("ok", "dropped", "rose", "absent", "noisy")
"""What a check says of one key: within its band, below its floor, above its ceiling, not in the scores."""

MATCH_FIELDS = ("machine", "cpu_vendor", "cpu_model", "cpu_isa", "aten_capability", "torch", "numpy", "mkl",
                "onednn", "threads", "device")  # fmt: skip
"""The platform fields two fingerprints must share to be the same platform (where the determinism test compares
the recorded seed-0 run exactly, `EXACT`; the check itself reads floors everywhere).

`cpu_isa` is the CPU's own highest kernel level, whatever `ATEN_CPU_CAPABILITY` caps: the kernel cap reaches ATen
only, MKL and oneDNN still take the CPU's own paths, so an AVX-512 machine capped to `avx2` is not an AVX2 machine
(measured: capped so, its quick demo misses the AVX2 recording by 0.046 on visual-MAE CCC_A, with the same model
name and kernel level)."""


def _field(fp: dict, key: str) -> Any:
    """A fingerprint's value of `key`; fingerprints written before `cpu_isa` existed give it from their kernel level
    where no cap was set (uncapped, ATen runs the CPU's own level), else None (unknown: never a match)."""
    if key == "cpu_isa" and key not in fp:
        return fp.get("aten_capability") if not fp.get("aten_capability_env") else None
    return fp.get(key)


def platform_differences(a: dict | None, b: dict | None) -> list[str]:
    """The `MATCH_FIELDS` in which two platform fingerprints differ, as `field: a != b`.

    Args:
        a: a fingerprint (e.g. the recording's), as `harness.runtime.fingerprint.platform_fingerprint` writes it.
        b: another (e.g. this run's).

    Returns:
        One entry per differing field; one entry saying which is missing when either has no fingerprint.
    """
    if not a or not b:
        return ["no platform fingerprint" + ("" if a else " in the recording") + ("" if b else " in the scores")]
    diffs = []
    for k in MATCH_FIELDS:
        va, vb = _field(a, k), _field(b, k)
        if va != vb or (k == "cpu_isa" and va is None):
            diffs.append(f"{k}: {va!s} != {vb!s}")
    return diffs


def _read_json_object(path: Path) -> dict:
    """The recorded leaderboard's JSON object, read bounded (`core.safe_read`), with its fixture scores checked.

    Raises:
        HarnessError: a missing file, a file that is not a bounded JSON object, or no 'fixture' with 'scores'.
    """
    if not path.exists():
        raise HarnessError(f"{path}: error: recorded leaderboard not found")
    data = read_json(path, "recorded leaderboard")
    fixture = data.get("fixture")
    if not isinstance(fixture, dict) or not isinstance(fixture.get("scores"), dict):
        raise HarnessError(f"{path}: error: needs a 'fixture' object with 'scores'")
    return data


def _migrate_v1(quick: dict) -> dict:
    """A format-1 `quick` part (scores, levels, band_factor) as format 2: each key's band is band_factor x its range
    over the kernel levels (within [`MIN_BAND`, `BAND_CAP`]), around the recorded run; the levels are its samples."""
    factor = float(quick.get("band_factor", BAND_FACTOR))
    levels = quick.get("levels", {})
    platform = quick.get("platform") or {}
    threads = platform.get("threads")
    # The recorded run is one of the levels' runs (its native one) where the levels include its kernel level.
    runs = len(levels) + (platform.get("aten_capability") not in levels)
    samples = [{"name": lv, "seed": 0, "level": lv, "threads": threads, "scores": dict(sc)}
               for lv, sc in sorted(levels.items())]  # fmt: skip
    keys = {}
    for key, v in quick["scores"].items():
        vals = [float(v)] + [float(s["scores"][key]) for s in samples if key in s["scores"]]
        spread = max(vals) - min(vals)
        band = min(BAND_CAP, max(MIN_BAND, factor * spread))
        keys[key] = {"value": float(v), "spread": spread, "runs": runs, "band": band, "floor": float(v) - band,
                     "ceiling": float(v) + band, "capped": factor * spread > BAND_CAP}  # fmt: skip
    return {**quick, "keys": keys, "samples": samples, "k": factor, "cap": BAND_CAP, "migrated_from": 1,
            "k_reason": (f"format 1 (before quality floors): band = {factor:g} x each key's range over the recording "
                         "machine's kernel levels; re-record with --record-quick --seeds to measure floors")}


def load_recorded(path: str | Path = RECORDED_PATH) -> dict:
    """The recorded leaderboard, in the current layout (`FORMAT`; a format-1 file is read as format 2).

    Layout: `{"format", "notes", "fixture": {"scores"}, "quick": {...}}`. `quick` holds `platform` and `scores` (the
    reference run: seed 0, native kernels, 1 thread, on the recording machine), `samples` (every recorded run:
    name, seed, level, threads, scores), `keys` (per guarded key: value, spread, runs, band, floor, ceiling,
    capped), `k` and `k_reason`, `cap`, and `accepted_drops` (each lowered floor's date, reason and keys).

    Raises:
        HarnessError: a missing file, invalid JSON or a missing part (the message names the file).
    """
    path = Path(path)
    data = _read_json_object(path)
    quick = data.get("quick")
    if quick is None:
        return data
    if not (isinstance(quick, dict) and isinstance(quick.get("scores"), dict)
            and isinstance(quick.get("levels", {}), dict)):  # fmt: skip
        raise HarnessError(f"{path}: error: 'quick' needs 'scores' (and 'levels' or 'keys') objects")
    if "keys" not in quick:
        data["quick"] = _migrate_v1(quick)
        return data
    keys = quick["keys"]
    bad = [k for k, e in keys.items() if not (isinstance(e, dict) and {"value", "floor", "ceiling"} <= set(e))] \
        if isinstance(keys, dict) else ["(keys is not an object)"]
    if bad:
        raise HarnessError(f"{path}: error: 'quick.keys' entries need value, floor and ceiling: {', '.join(bad[:5])}")
    return data


def band_status(current: float | None, floor: float, ceiling: float) -> str:
    """A key's status (`STATUSES`): `absent` (None), `dropped` (below the floor, or not a finite number), `rose`
    (above the ceiling), else `ok`. The floor and ceiling themselves pass."""
    if current is None:
        return "absent"
    if not math.isfinite(current) or current < floor:
        return "dropped"
    return "rose" if current > ceiling else "ok"


def _status(current: float | None, floor: float, ceiling: float, guarded: bool) -> str:
    """`band_status`, except that a finite value of an unguarded key (too noisy to guard) is `noisy`, never a
    failure."""
    if not guarded and current is not None and math.isfinite(current):
        return "noisy"
    return band_status(current, floor, ceiling)


@dataclass(frozen=True)
class Comparison:
    """One recorded key against the current run.

    Args:
        key: the configuration and metric, e.g. "quick/test/bdca/p_va".
        recorded: the recorded value (for a run key, the mean over the recorded runs).
        current: this run's value (None when the run did not produce it).
        floor: the lowest value that passes.
        ceiling: the highest value that passes.
        mode: `floors` (a run key) or `fixture`.
        guarded: False for a key whose measured band is wider than the cap (`BAND_CAP`): listed as `noisy`, never
            failed (a value that is not a number still drops).
    """

    key: str
    recorded: float
    current: float | None
    floor: float
    ceiling: float
    mode: str
    guarded: bool = True

    @property
    def delta(self) -> float | None:
        return None if self.current is None else self.current - self.recorded

    @property
    def allowed(self) -> float:
        """The band's half-width (how far the value may move either way)."""
        return max(self.recorded - self.floor, self.ceiling - self.recorded)

    @property
    def status(self) -> str:
        return _status(self.current, self.floor, self.ceiling, self.guarded)

    @property
    def ok(self) -> bool:
        """Neither dropped nor rose (an absent or a noisy key is listed, not failed)."""
        return self.status in ("ok", "absent", "noisy")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of checking scores against the recorded leaderboard.

    Args:
        mode: `floors` (run scores against the recorded floors) or `fixture` (no run scores: the fixture only).
        reason: what was compared and how, in words (with the fingerprint fields that differ from the recording's).
        rows: one comparison per recorded key, absent ones included (status `absent`); the fixture's first.
        absent: recorded run keys the scores do not hold (listed, not failed: a full demo has no quick keys).
    """

    mode: str
    reason: str
    rows: list[Comparison]
    absent: list[str]

    @property
    def dropped(self) -> list[str]:
        """Keys below their floor (or not finite)."""
        return [r.key for r in self.rows if r.status == "dropped"]

    @property
    def rose(self) -> list[str]:
        """Keys above their ceiling."""
        return [r.key for r in self.rows if r.status == "rose"]

    @property
    def noisy(self) -> list[str]:
        """Keys recorded as too noisy to guard (band wider than the cap), present in the scores: listed only."""
        return [r.key for r in self.rows if r.status == "noisy"]

    @property
    def ok(self) -> bool:
        """No key dropped and none rose."""
        return not self.dropped and not self.rose


def _runs_summary(quick: dict) -> str:
    samples = quick.get("samples", [])
    seeds = sorted({s["seed"] for s in samples if s.get("seed") is not None})
    levels = sorted({str(s.get("level")) for s in samples if s.get("level")})
    threads = sorted({s["threads"] for s in samples if s.get("threads") is not None})
    parts = [f"{len(samples)} runs"]
    for name, vals in (("seeds", seeds), ("levels", levels), ("threads", threads)):
        if vals:
            parts.append(f"{name} {','.join(map(str, vals))}")
    return "; ".join(parts)


def check_recorded(current: dict[str, float], recorded: dict, platform: dict | None = None) -> CheckResult:
    """Compare scores with the recorded leaderboard: each run key against its floor and ceiling, the fixture to 1e-9.

    A key below its floor has `dropped` (a regression), one above its ceiling `rose` (a change to re-record
    deliberately, with its reason: a rise can be a leak of test labels). The platform only informs the reason:
    floors hold on every machine, exact equality is the determinism test's (`exact_differences`).

    Args:
        current: flat scores `{key: value}`; the fixture's keys are checked whenever present.
        recorded: `load_recorded()`.
        platform: the fingerprint of the run that made `current` (None: unknown).
    """
    rows = [Comparison(k, float(v), current.get(k), float(v) - FIXTURE_TOLERANCE, float(v) + FIXTURE_TOLERANCE,
                       "fixture") for k, v in sorted(recorded["fixture"]["scores"].items())]  # fmt: skip
    quick = recorded.get("quick")
    run_keys = [k for k in current if not k.startswith("fixture/")]
    if quick is None or not run_keys:
        return CheckResult("fixture", "no run scores given: only the scoring fixture is checked", rows, [])
    diffs = platform_differences(quick.get("platform"), platform)
    where = (f"this platform differs from the recording's ({'; '.join(diffs)})" if diffs
             else "the recording platform (where the determinism test also compares the seed-0 run exactly)")
    k, cap = float(quick.get("k", 0.0)), float(quick.get("cap", BAND_CAP))
    reason = (f"each key within its recorded value +- k x its spread over {_runs_summary(quick)} "
              f"(k {k:.3g}, bands within [{MIN_BAND:g}, {cap:g}]); {where}")
    absent = []
    for k, e in sorted(quick["keys"].items()):
        if k not in current:
            absent.append(k)
        rows.append(Comparison(k, float(e["value"]), current.get(k), float(e["floor"]), float(e["ceiling"]),
                               "floors", guarded=bool(e.get("guarded", True))))  # fmt: skip
    if len(absent) == len(quick["keys"]):
        reason += "; none of the recorded run keys is in these scores"
    return CheckResult("floors", reason, rows, absent)


def exact_differences(current: dict[str, float], recorded: dict, tolerance: float = EXACT) -> list[str]:
    """The recorded reference run's keys (seed 0, native, 1 thread) that `current` misses by more than `tolerance`,
    as `key: recorded -> current`; for the determinism test on the recording platform."""
    out = []
    for k, v in sorted(recorded["quick"]["scores"].items()):
        c = current.get(k)
        if c is None or not math.isfinite(c) or abs(c - float(v)) > tolerance:
            out.append(f"{k}: {float(v)!r} -> {c!r}")
    return out


def floor_drops(old_quick: dict | None, new_keys: Mapping[str, Mapping[str, float]]) -> dict[str, str]:
    """The guarded keys a new recording would weaken: a floor below the old one, or an old key no longer guarded.

    Args:
        old_quick: the `quick` part of the recording being replaced (None: nothing to weaken).
        new_keys: the new recording's `{key: {"floor", ...}}`.

    Returns:
        `{key: what changed, in words}`.
    """
    if not old_quick:
        return {}
    out = {}
    for k, e in sorted(old_quick.get("keys", {}).items()):
        if not e.get("guarded", True):
            continue  # it guarded nothing: no recording can weaken it
        new = new_keys.get(k)
        if new is None:
            out[k] = f"no longer recorded (floor was {float(e['floor']):.6g})"
        elif not new.get("guarded", True):
            out[k] = f"no longer guarded: it now varies too much for the cap (floor was {float(e['floor']):.6g})"
        elif float(new["floor"]) < float(e["floor"]):
            out[k] = f"floor {float(e['floor']):.6g} -> {float(new['floor']):.6g}"
    return out


def record_scores(reference: dict[str, float], platform: dict, path: str | Path = RECORDED_PATH, *,
                  floors: Mapping[str, Mapping[str, Any]], samples: Sequence[Mapping[str, Any]], k: float,
                  k_reason: str, cap: float = BAND_CAP, accept_drop: str | None = None,
                  today: str | None = None) -> dict:  # fmt: skip
    """Write a new recorded leaderboard (a deliberate act: CI never calls this); refuse to lower a floor silently.

    Args:
        reference: the reference run's flat scores (seed 0, native, 1 thread): `fixture/*` keys go to the fixture,
            the others are kept exactly (`exact_differences`) and must be the keys of `floors`.
        platform: the fingerprint of the reference run.
        path: the recorded leaderboard file.
        floors: per guarded key, `{"value", "spread", "runs", "band", "floor", "ceiling", "capped"}`.
        samples: every run the floors were measured from (`{"name", "seed", "level", "threads", "scores"}`).
        k: the band factor, and `k_reason` the reasoning for it (both go into the file).
        cap: the widest band used.
        accept_drop: why a lower floor (or a key no longer guarded) is accepted; without it such a recording is
            refused and nothing is written.
        today: the date written beside an accepted drop (default: today, UTC).

    Raises:
        HarnessError: the reference's keys differ from the floors', or floors drop without `accept_drop` (the
            message lists them and says how to accept).
    """
    path = Path(path)
    old = load_recorded(path) if path.exists() else {"fixture": {"scores": {}}}
    fixture = {key: round(float(v), 12) for key, v in reference.items() if key.startswith("fixture/")}
    run = {key: float(v) for key, v in reference.items() if not key.startswith("fixture/")}
    if set(run) != set(floors):
        odd = sorted(set(run) ^ set(floors))
        raise HarnessError(f"{path}: error: the reference run and the floors name different keys ({', '.join(odd[:5])})"
                           "; nothing recorded")  # fmt: skip
    old_quick = old.get("quick")
    drops = floor_drops(old_quick, floors)
    if drops and not (accept_drop and accept_drop.strip()):
        listed = "; ".join(f"{key}: {what}" for key, what in drops.items())
        raise HarnessError(f"{path}: error: the new recording lowers {len(drops)} floor(s) ({listed}); nothing "
                           "recorded. If that is meant, re-run with --accept-drop REASON (the reason, date and keys "
                           "go into the file)")  # fmt: skip
    accepted = list((old_quick or {}).get("accepted_drops", []))
    if drops:
        day = today or _dt.datetime.now(_dt.UTC).date().isoformat()
        accepted.append({"date": day, "reason": accept_drop.strip(), "keys": drops})
    out = {
        "format": FORMAT,
        "notes": RECORDED_NOTES,
        "fixture": {"scores": {**old["fixture"]["scores"], **fixture}},
        "quick": {
            "platform": dict(platform),
            "scores": run,
            "keys": {key: dict(floors[key]) for key in sorted(floors)},
            "samples": [dict(s) for s in samples],
            "k": float(k),
            "k_reason": k_reason,
            "cap": float(cap),
            "accepted_drops": accepted,
        },
    }
    atomic_write_text(path, json.dumps(out, indent=1, sort_keys=True) + "\n")
    return out


RECORDED_NOTES = (
    "Scores CI guards. fixture/* guard the scoring formula (pure numpy, float64): they hold to 1e-9 on every machine. "
    "quick.keys guard the quick demo's quality: per key, value is the mean over quick.samples (training seeds on the "
    "recording machine, and the same run under each ATEN_CPU_CAPABILITY level it offers and at 1 and 2 threads), "
    "spread their standard deviation (ddof 1), band k x spread within [1e-6, cap], floor = value - band and ceiling "
    "= value + band. `harness leaderboard --check` fails with 'REGRESSION: dropped' below a floor and 'CHANGED: rose "
    "beyond the band' above a ceiling. k_reason says how k follows from the measured runs. quick.scores is the "
    "reference run (seed 0, native kernels, 1 thread) that the determinism test compares exactly on quick.platform. "
    "Update only by a deliberate commit: `harness leaderboard --record-quick WORKDIR --seeds 0,1,2,3,4`; a lower "
    "floor needs --accept-drop REASON, kept in quick.accepted_drops."
)
