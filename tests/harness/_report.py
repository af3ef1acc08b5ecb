"""A demo folder as `harness demo` lays it out, made in seconds by the real writers, and the score tables in it:
shared by the report's reader tests and its browser test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

EVIL = "BDCA <w/o DW> & \"co\""
"""A row name that must reach the page as text, never as markup."""


def _row(name: str, scores: tuple[float, float, float], bounds: tuple[float, float] | None,
         paper: tuple[float, float, float] | None = None, on: str = "validation") -> dict:  # fmt: skip
    """A results row with the columns `harness.experiments.folds.TABLE_SCHEMA` names (one interval for every score)."""
    nan = float("nan")
    row: dict = {"row": name, "valence": scores[0], "arousal": scores[1], "average": scores[2], "on": on,
                 "runs": f"runs/{name}", "clusters": 10 if bounds else 1, "seeds": "0"}  # fmt: skip
    for col, p in zip(("valence", "arousal", "average"), paper or (nan, nan, nan), strict=True):
        row[f"paper_{col}"] = p
        row[f"{col}_low"], row[f"{col}_high"] = bounds if bounds else (nan, nan)
        row[f"{col}_std"] = nan
    return row


def _paired(row: str, against: str, d: float, low: float, high: float) -> dict:
    """A paired-differences row with the columns `harness.experiments.folds.PAIRED_SCHEMA` names (the same for each
    score)."""
    out: dict = {"comparison": f"{row} - {against}", "row": row, "against": against}
    for col in ("valence", "arousal", "average"):
        out.update({f"d_{col}": d, f"d_{col}_low": low, f"d_{col}_high": high,
                    f"{col}_verdict": "resolved" if low > 0 or high < 0 else "not resolved"})  # fmt: skip
    return {**out, "clusters": 10, "note": "", "seeds": "0"}


TABLE_I = [_row("Fold 0", (0.62, 0.65, 0.634), (0.50, 0.72), (0.582, 0.646, 0.614), "test"),
           _row("Mean", (0.62, 0.65, 0.634), (0.50, 0.72), (0.58, 0.63, 0.61))]  # fmt: skip
TABLE_IV = [_row("Baseline", (0.44, 0.10, 0.27), (0.13, 0.37), (0.24, 0.2, 0.22)),
            _row(EVIL, (0.58, 0.80, 0.69), (0.56, 0.75), (0.598, 0.64, 0.619)),
            _row("BDCA", (0.58, 0.79, 0.688), (0.58, 0.73), (0.605, 0.658, 0.632))]  # fmt: skip
PAIRED_IV = [_paired("Baseline", "BDCA", -0.286, -0.388, -0.171), _paired(EVIL, "BDCA", 0.003, -0.030, 0.028)]
TABLE_III = [_row("MAE w/o FT", (0.30, 0.36, 0.333), (0.15, 0.48)), _row("MAE", (0.5, 0.41, 0.455), (0.25, 0.58))]
PAIRED_III = [_paired("MAE w/o FT", "MAE", -0.122, -0.341, 0.162)]


def make_demo_folder(root: Path) -> Path:
    """A demo folder as `harness demo` lays it out, made in seconds by the real writers: the tables by
    `harness.experiments.folds._write_table`, the plots by `harness.reporting.plots`, the fingerprint by
    `harness.runtime.fingerprint`.

    Holds Tables I, III and IV (with paired differences), scores.json, timings.json, a submission.zip, the four
    plots under plots/, fold 0's run files (config, git hash, metrics) and a fold 1 whose curves are drawn from its
    metrics.jsonl (it has no curve PNG).

    Args:
        root: the folder to make.
    """
    from harness.experiments.folds import _write_table
    from harness.experiments.table_files import PAIRED_SCHEMA
    from harness.reporting.plots import plot_curves, plot_gates, plot_histograms, plot_traces
    from harness.runtime.fingerprint import platform_fingerprint

    exp = root / "experiments"
    exp.mkdir(parents=True)
    _write_table(exp, "I", TABLE_I, "Table I: CCC per fold (fake config)", None)
    _write_table(exp, "IV", TABLE_IV, "Table IV: fusion ablation (fold 3, fake config)", None,
                 pl.DataFrame(PAIRED_IV, schema=PAIRED_SCHEMA))  # fmt: skip
    _write_table(exp, "III", TABLE_III, "Table III: visual features without vs with fine-tuning", None,
                 pl.DataFrame(PAIRED_III, schema=PAIRED_SCHEMA))  # fmt: skip
    rng = np.random.default_rng(0)
    lab = np.clip(rng.normal(0.2, 0.3, (150, 2)), -1, 1)
    lab[40:55] = -5
    pred = np.clip(lab + rng.normal(0, 0.1, lab.shape), -1, 1)
    records = [{"epoch": e, "train_loss": 0.9 - 0.1 * e, "val_p_va": 0.1 * e, "lr": 1e-3} for e in range(4)]
    plots = root / "plots"
    plot_traces(plots / "traces_test.png", {"video_01": (lab, pred)})
    plot_histograms(plots / "histograms_test.png", lab, pred)
    plot_gates(plots / "gates_test.png", {"visual": rng.dirichlet([1, 1], 150), "audio": rng.dirichlet([1, 1], 150)})
    plot_curves(plots / "curves_fold0.png", records, keys=("train_loss", "val_p_va", "lr"))
    for fold in (0, 1):
        run = exp / "folds" / f"fold{fold}"
        run.mkdir(parents=True)
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    run0 = exp / "folds" / "fold0"
    (run0 / "config.yaml").write_text("name: fake\nseed: 0\nmodel:\n  name: bdca\n")
    (run0 / "git.txt").write_text("0123456789abcdef0123456789abcdef01234567\n")
    ci = {"ccc_v_ci_low": 0.50, "ccc_v_ci_high": 0.72, "ccc_a_ci_low": 0.50, "ccc_a_ci_high": 0.72,
          "p_va_ci_low": 0.50, "p_va_ci_high": 0.72}  # fmt: skip
    scores = {"fake/fold0/bdca": {"ccc_v": 0.62, "ccc_a": 0.65, "p_va": 0.634, **ci},
              "fake/test/bdca": {"ccc_v": 0.47, "ccc_a": 0.59, "p_va": 0.525},
              "gates/fake/fold0/visual": {"mean": 0.9, "std": 0.12, "frames": 150.0},
              "platform": platform_fingerprint()}  # fmt: skip
    (root / "scores.json").write_text(json.dumps(scores, indent=1))
    (root / "timings.json").write_text(json.dumps({"1/5 corpus": 6.9, "5/5 submission, score, report": 1.2,
                                                   "peak_rss_mib": {"1/5 corpus": {"self": 920.9, "children": 3.0}}}))
    (root / "submission.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    return root
