"""The paper's tables as data, leaderboards beside the field, and the recorded leaderboard that CI guards.

`data/paper_tables.csv` holds Tables I-IV of the BDCA paper (Liang et al., "Enhancing Audio-Visual Affective
Analysis via Bidirectional Dynamic Cross-Modal Attention and Masked Autoencoding"), one row per line with its source.
`recorded_leaderboard.json` holds the scores of configurations this project runs itself (the demo's folds and
ablations, and a fixed scoring fixture); `compare_recorded` flags any score that drops by more than the tolerance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

from submissions.atomic import atomic_write_text
from submissions.errors import HarnessError
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
    """

    name: str
    ccc_v: float
    ccc_a: float
    p_va: float
    source: str


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


def leaderboard(entries: list[Entry], table: str = "II", reference: str = "BDCA") -> pl.DataFrame:
    """Entries beside the paper's rows of `table`, sorted by P_VA, with the delta to the paper's `reference` row.

    Returns a table with columns rank, name, valence, arousal, average, delta, source, ours.
    """
    paper = paper_rows(table)
    ref = next((e for e in paper if e.name == reference), None)
    rows = [(e, False) for e in paper] + [(e, True) for e in entries]
    rows.sort(key=lambda r: -r[0].p_va)
    return pl.DataFrame(
        {
            "rank": list(range(1, len(rows) + 1)),
            "name": [e.name for e, _ in rows],
            "valence": [e.ccc_v for e, _ in rows],
            "arousal": [e.ccc_a for e, _ in rows],
            "average": [e.p_va for e, _ in rows],
            "delta": [e.p_va - ref.p_va if ref else float("nan") for e, _ in rows],
            "source": [e.source for e, _ in rows],
            "ours": [o for _, o in rows],
        }
    )


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


def load_recorded(path: str | Path = RECORDED_PATH) -> dict:
    """The recorded leaderboard: {"tolerance": float, "scores": {key: value}, "notes": ...}."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise HarnessError(f"recorded leaderboard not found: {path}") from exc
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data.get("scores"), dict) or not isinstance(data.get("tolerance"), int | float):
        raise HarnessError(f"{path}: needs a 'tolerance' number and a 'scores' object")
    return data


@dataclass(frozen=True)
class Comparison:
    """One recorded score against the current run.

    Args:
        key: the configuration and metric, e.g. "quick/fold0/bdca/p_va".
        recorded: the recorded value.
        current: this run's value (None when the run did not produce it).
        tolerance: how far below the recorded value the current one may fall.
    """

    key: str
    recorded: float
    current: float | None
    tolerance: float

    @property
    def delta(self) -> float | None:
        return None if self.current is None else self.current - self.recorded

    @property
    def ok(self) -> bool:
        return self.current is not None and np.isfinite(self.current) and self.current >= self.recorded - self.tolerance


def compare_recorded(current: dict[str, float], recorded: dict, prefix: str = "") -> list[Comparison]:
    """Compare current scores with every recorded key (optionally only those starting with `prefix`)."""
    tol = float(recorded["tolerance"])
    return [
        Comparison(k, float(v), current.get(k), tol)
        for k, v in sorted(recorded["scores"].items())
        if k.startswith(prefix)
    ]


def record_scores(current: dict[str, float], path: str | Path = RECORDED_PATH, tolerance: float | None = None) -> dict:
    """Write `current` as the new recorded leaderboard (a deliberate act: CI never calls this)."""
    path = Path(path)
    old = load_recorded(path) if path.exists() else {"tolerance": 0.02, "scores": {}}
    old["scores"] = {**old["scores"], **{k: round(float(v), 6) for k, v in current.items()}}
    if tolerance is not None:
        old["tolerance"] = tolerance
    atomic_write_text(path, json.dumps(old, indent=2, sort_keys=True) + "\n")
    return old
