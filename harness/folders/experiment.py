"""An experiment folder's layout: the run folders of Tables I, III and IV, and the tables written beside them.

    <out>/stage1/                     stage 1 (encoder, features into the cache), shared by everything below
    <out>/folds/fold<i>/              the configured model on fold i (Table I, and Table IV's row of that model)
    <out>/ablation/<model>/fold<i>/   the other Table IV models
    <out>/ablation/visual_only_<feature>/fold<i>/   Table III's visual-only model on other visual features
    <out>/table_<name>.{csv,md,json}, table_<name>_paired.csv, table_II_measured_cost.csv, table_II_self_reported.csv

A run of a stage-2 seed other than the config's own gets the subfolder `seed<s>` of its folder. `ExperimentDir` is
the only code that spells these names.
"""

from __future__ import annotations

from pathlib import Path

from harness.config import Config
from harness.folders.run import STAGE1_DIR, SUMMARY_FILE

FOLDS_DIR = "folds"
"""Table I's runs of the configured model, one folder per fold."""
ABLATION_DIR = "ablation"
"""The other rows' runs (Tables III and IV), one folder per row, then per fold."""
TABLES = ("I", "II_measured", "III", "IV")
"""The paper's tables an experiment writes, in the paper's order (`table_<name>.{csv,md,json}`; `II_measured`: Table
II measured, `harness compare`)."""
TABLE_SUFFIXES = (".csv", ".md", ".json", "_paired.csv")
"""The files of one table: the rows, the Markdown page, the JSON record, the paired differences."""
COST_TABLE = "II_measured_cost"
"""Table II (measured)'s cost rows (`table_II_measured_cost.csv`)."""
SELF_REPORTED_TABLE = "II_self_reported"
"""The paper's self-reported Table II rows (`table_II_self_reported.csv`)."""

EXPERIMENT_LAYOUT = (STAGE1_DIR, FOLDS_DIR, ABLATION_DIR,
                     *(f"table_{t}{ext}" for t in TABLES for ext in TABLE_SUFFIXES),
                     f"table_{COST_TABLE}.csv", f"table_{SELF_REPORTED_TABLE}.csv")  # fmt: skip
"""What the experiments write in an experiment folder (claimed in its ownership record)."""


def run_dir_for(out: str | Path, cfg: Config, fold: int, model: str | None = None, visual: str | None = None,
                seed: int | None = None) -> Path:  # fmt: skip
    """The run folder of a (model, visual feature, fold, stage-2 seed) variant (see the module docstring).

    Args:
        out: the experiment output folder.
        cfg: the base config.
        fold: fold index.
        model: temporal model (default: the config's).
        visual: visual feature (default: the config's).
        seed: stage-2 seed (default: the config's `seed`, whose runs keep the folder without a seed level).
    """
    model = model or cfg.model.name
    visual = visual or cfg.features.visual
    out = Path(out)
    if model == cfg.model.name and visual == cfg.features.visual:
        path = out / FOLDS_DIR / f"fold{fold}"
    else:
        name = model if visual == cfg.features.visual else f"{model}_{visual}"
        path = out / ABLATION_DIR / name / f"fold{fold}"
    return path if seed is None or seed == cfg.seed else path / f"seed{seed}"


class ExperimentDir:
    """The files and folders of one experiment folder (nothing is created or read here)."""

    def __init__(self, path: str | Path) -> None:
        """Args:
        path: the experiment folder.
        """
        self.path = Path(path)

    @property
    def stage1(self) -> Path:
        """Stage 1's run folder, shared by every stage-2 run of the experiment."""
        return self.path / STAGE1_DIR

    @property
    def folds_dir(self) -> Path:
        """Table I's runs."""
        return self.path / FOLDS_DIR

    @property
    def ablation_dir(self) -> Path:
        """The other rows' runs."""
        return self.path / ABLATION_DIR

    @property
    def fold0(self) -> Path:
        """The configured model's run on fold 0 (the official split) with the config's seed."""
        return self.folds_dir / "fold0"

    def run_dir(self, cfg: Config, fold: int, model: str | None = None, visual: str | None = None,
                seed: int | None = None) -> Path:  # fmt: skip
        """The run folder of one variant (`run_dir_for` in this folder)."""
        return run_dir_for(self.path, cfg, fold, model, visual, seed)

    def table_file(self, name: str, suffix: str) -> Path:
        """`table_<name><suffix>`: a table's file (`suffix`: one of `TABLE_SUFFIXES`)."""
        return self.path / f"table_{name}{suffix}"

    @property
    def cost_file(self) -> Path:
        """Table II (measured)'s cost rows."""
        return self.table_file(COST_TABLE, ".csv")

    @property
    def self_reported_file(self) -> Path:
        """The paper's self-reported Table II rows."""
        return self.table_file(SELF_REPORTED_TABLE, ".csv")

    def has_tables(self) -> bool:
        """Whether a table's rows are here (`table_<name>.json` or `.csv`)."""
        return any(self.table_file(n, s).is_file() for n in TABLES for s in (".json", ".csv"))

    def looks_like_one(self) -> bool:
        """Whether the folder holds an experiment's tables or run folders."""
        return self.has_tables() or self.folds_dir.is_dir() or self.ablation_dir.is_dir()

    def fold_summaries(self) -> list[Path]:
        """The finished Table I runs' summaries, in fold order of their names."""
        return sorted(self.folds_dir.glob(f"fold*/{SUMMARY_FILE}"))

    def ablation_summaries(self) -> list[Path]:
        """The finished ablation runs' summaries (`ablation/<row>/fold<i>/summary.json`)."""
        return sorted(self.ablation_dir.glob(f"*/fold*/{SUMMARY_FILE}"))

    def fold_dirs(self) -> list[Path]:
        """Table I's run folders (`folds/fold*`), in the order of their names."""
        return sorted(self.folds_dir.glob("fold*"))
