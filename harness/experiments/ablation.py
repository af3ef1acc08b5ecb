"""Table IV (fusion ablation: audio or visual only, concatenation, BDCA without its dynamic weights, the baseline,
the model without label refinement) and Table III (the visual-only model on the features before and after
fine-tuning), with paired differences (`pairs_iv`, `PAIRS_III`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.ownership import claim_folder
from harness.config import BASELINE_ROW, NO_REFINE_ROW, Config, ConfigError, TableRow, table_rows
from harness.experiments.rows import (
    ExperimentRun,
    ExperimentSetup,
    TableReport,
    _flat,
    _grid_stats,
    _intervals,
    _paper,
    _seeds_of,
    _summary_row,
    train_row,
)
from harness.experiments.table_files import _paired_row, _paired_table, _row, _seed_title, _write_table
from harness.folders.experiment import EXPERIMENT_LAYOUT
from harness.runtime.distributed import Strategy
from harness.stages.skeleton import StageResult
from preprocessing.affwild2 import AffWild2Layout
from preprocessing.cache import FeatureCache
from submissions.bootstrap import (
    ClusterStats,
)

PAPER_NAMES_IV = {
    "audio_only": "Only Audio",
    "visual_only": "Only Visual",
    "concat": "Concat w/o BDCA",
    "bdca_no_dw": "BDCA w/o DW",
    "bdca": "BDCA",
    BASELINE_ROW: "Baseline",
    NO_REFINE_ROW: "BDCA w/o label refinement",
}
"""Our temporal model names (and the challenge baseline's row, `harness.stages.baseline`, and the row without label
refinement) -> the paper's Table IV rows (the paper has no row without refinement; ours says what it adds)."""

TABLE3_ROWS = (("visual_mae", "MAE w/o FT"), ("visual", "MAE"))
"""Table III: (cached visual feature, the paper's row) for the visual-only model."""

PAIRS_III = (("MAE w/o FT", "MAE"),)
"""Table III's paired comparison: the features before fine-tuning against those after."""


def run_ablation(
    cfg: Config,
    layout: AffWild2Layout,
    cache: FeatureCache,
    out: str | Path,
    folds: Sequence[int] | None = None,
    *,
    models: Sequence[str] | None = None,
    table3: bool | None = None,
    seeds: Sequence[int] | None = None,
    resume: bool = False,
    progress: bool | None = None,
    console: Any = None,
    on_result: Callable[[StageResult], None] | None = None,
    strategy: Strategy | None = None,
) -> list[TableReport]:
    """Tables IV and III on the same folds and seeds, each beside the paper's rows.

    Table IV trains each temporal model of `experiment.ablation_models`; Table III trains the visual-only model on
    the features of the encoder before fine-tuning (`visual_mae`) and after (`visual`, shared with Table IV's
    "Only Visual"). Scores are means over the folds (and the seeds).

    Args:
        cfg: the config.
        layout: the dataset layout.
        cache: the feature cache.
        out: the experiment output folder (shared with `run_folds`).
        folds: folds (default: `experiment.ablation_folds`).
        models: Table IV models (default: `experiment.ablation_models`).
        table3: run Table III (default: `experiment.table3`).
        seeds: stage-2 seeds (default: `Config.stage2_seeds`).
        resume: continue interrupted runs.
        progress: progress bars.
        console: rich console for the tables.
        on_result: called after each run (with an `ExperimentRun`).
        strategy: the run's processes (None: this process's own, `harness.runtime.distributed.current_strategy`).
    """
    out = Path(out)
    claim_folder(out, EXPERIMENT_LAYOUT, what="experiment folder")  # a folder the harness did not write: refused
    folds = list(cfg.experiment.ablation_folds if folds is None else folds)
    models = list(cfg.experiment.ablation_models if models is None else models)
    table3 = cfg.experiment.table3 if table3 is None else table3
    seeds = _seeds_of(cfg, seeds)
    if table3 and cfg.stage1.enabled and not cfg.stage1.extract_unfinetuned:
        raise ConfigError(
            "Table III needs the features before fine-tuning: set stage1.extract_unfinetuned=true "
            "(or run without Table III)"
        )
    setup = ExperimentSetup(cfg, layout, cache, out, seeds, resume, progress, console, on_result,
                            strategy).with_stage1()  # fmt: skip

    def train(row: TableRow, visual: str) -> list[list[ExperimentRun]]:
        return train_row(setup, folds, row, visual)

    reports = []
    fold_txt = ",".join(map(str, folds))
    paper = _paper("IV")
    rows, all_results, intervals = [], [], {}
    row_stats: dict[str, list[list[ClusterStats | None]]] = {}
    for row in table_rows(models):
        grid = train(row, cfg.features.visual)
        all_results += _flat(grid)
        name = PAPER_NAMES_IV.get(row.name, row.name)
        intervals.update(_intervals(_flat(grid)))
        row_stats[name] = _grid_stats(grid)
        rows.append(_summary_row(name, grid, paper.get(name), seeds))
    if "Baseline" in paper and not any(r.kind == "baseline" for r in table_rows(models)):
        rows.insert(0, _row("Baseline (paper)", [None] * 3, paper["Baseline"], "", ""))
    paired = _paired_table([_paired_row(a, b, row_stats[a], row_stats[b], seeds)
                            for a, b in pairs_iv(list(row_stats))])  # fmt: skip
    title = f"Table IV: fusion ablation (folds {fold_txt}, {cfg.name} config{_seed_title(seeds)})"
    df, files = _write_table(out, "IV", rows, title, console, paired, seeds)
    reports.append(TableReport("IV", df, files, all_results, intervals, paired, seeds))

    if table3:
        paper3 = _paper("III")
        rows, all_results, intervals, row_stats = [], [], {}, {}
        for visual, name in TABLE3_ROWS:
            grid = train(TableRow.model("visual_only"), visual)
            all_results += _flat(grid)
            intervals.update(_intervals(_flat(grid)))
            row_stats[name] = _grid_stats(grid)
            rows.append(_summary_row(name, grid, paper3.get(name), seeds))
        if "Fuxi" in paper3:
            rows.insert(1, _row("Fuxi (paper)", [None] * 3, paper3["Fuxi"], "", ""))
        paired = _paired_table([_paired_row(a, b, row_stats[a], row_stats[b], seeds) for a, b in PAIRS_III])
        title = (f"Table III: visual features without vs with fine-tuning (visual only, folds {fold_txt}"
                 f"{_seed_title(seeds)})")  # fmt: skip
        df, files = _write_table(out, "III", rows, title, console, paired, seeds)
        reports.append(TableReport("III", df, files, all_results, intervals, paired, seeds))
    return reports


def pairs_iv(rows: Sequence[str]) -> list[tuple[str, str]]:
    """Table IV's paired comparisons among the rows present: every row against BDCA, then Concat w/o BDCA against
    BDCA w/o DW (what the dynamic weights add on top of cross-attention is BDCA - BDCA w/o DW, already a pair).

    Args:
        rows: the table's row names (the paper's names, `PAPER_NAMES_IV`).
    """
    full, concat, no_dw = PAPER_NAMES_IV["bdca"], PAPER_NAMES_IV["concat"], PAPER_NAMES_IV["bdca_no_dw"]
    pairs = [(r, full) for r in rows if r != full] if full in rows else []
    if concat in rows and no_dw in rows:
        pairs.append((concat, no_dw))
    return pairs
