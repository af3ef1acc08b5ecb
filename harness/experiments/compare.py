"""Table II measured: BDCA and the field's rival fusion models (`models.zoo`) trained and scored side by side.

Every model is a stage-2 row of the experiments (`harness.experiments.folds`): the same cached features, normalisation,
windows, epochs, early stopping (best validation epoch), folds and seeds as BDCA, trained by the same
`train_stage2` into the experiment folder's run layout (`<out>/folds/fold<i>/` for the config's own model,
`<out>/ablation/<model>/fold<i>/` for the others: a `harness ablate` or `harness folds` run of the same config
is reused, and an interrupted compare resumes with its first unfinished run). Each row gets the video-bootstrap
interval of its score and its paired difference against BDCA with the verdict (the same draws for both rows).

Beside the scores, one cost row per model, measured in this process on this device (`measure_cost`): parameters,
forward GFLOPs per window (`models.flops.count_flops`), the seconds of one training step (forward, backward and an
AdamW step on a batch of `stage2.micro_batch` random windows, after a warm-up step), and the frames per second of
whole-video prediction of the reported split with the trained weights (features already loaded). The rival's
state-space library (`mamba_va`) is named. The paper's Table II (the 8th ABAW teams, self-reported, each with its
own features, splits and ensembles) is written beside it, labelled so.

Files: `<out>/table_II_measured.{csv,md,json}`, `table_II_measured_paired.csv`, `table_II_measured_cost.csv`,
`table_II_self_reported.csv`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from core.atomic import atomic_write_text
from core.safe_read import read_json, read_text
from harness.config import Config, ConfigError, TableRow
from harness.data.datasets import load_video_streams
from harness.experiments.folds import (
    ExperimentRun,
    ExperimentSetup,
    _flat,
    _intervals,
    _seed_title,
    _seeds_of,
    _summary_row,
    _write_table,
    train_row,
)
from harness.experiments.rows import _grid_stats
from harness.experiments.table_files import _json_safe, _paired_row, _paired_table
from harness.folders.experiment import ExperimentDir
from harness.folders.run import RunDir
from harness.reporting.tables import print_table
from harness.runtime.distributed import Strategy, current_strategy
from harness.stages.predict import load_predictions, load_trained, module_forward, predict_arrays
from harness.stages.skeleton import StageResult
from harness.stages.stage2 import stage2_loss
from models.flops import count_flops, count_params
from models.registry import build_model, stage2_models
from models.zoo import ZOO
from preprocessing.affwild2 import AffWild2Layout
from preprocessing.cache import FeatureCache
from submissions.leaderboard import paper_rows, table_markdown

REFERENCE = "bdca"
"""The model every row is paired against."""

SELF_REPORTED = {"bdca": "BDCA", "mamba_va": "Charon"}
"""A model's row in the paper's Table II where that row is the same paper's system (Charon's entry is Liang et al.,
arXiv 2503.10104, the `mamba_va` paper); shown in the paper columns beside the measured scores."""

TABLE = "II_measured"
"""The table's file stem (`table_II_measured.*`)."""

TIMED_STEPS = 5
"""Training steps timed per model (after one warm-up step)."""

COST_SCHEMA = {"row": pl.Utf8, "model": pl.Utf8, "citation": pl.Utf8, "params": pl.Int64, "gflops_window": pl.Float64,
               "train_step_ms": pl.Float64, "predict_fps": pl.Float64, "predict_frames": pl.Int64,
               "backend": pl.Utf8, "device": pl.Utf8, "threads": pl.Int64}  # fmt: skip
"""The cost table's columns: parameters, forward GFLOPs per window, milliseconds per training step, prediction frames
per second (and the frames timed), the state-space library (mamba_va), the device and torch's intra-op threads."""


def display_name(model: str) -> str:
    """The row name of a model: `BDCA` for the reference, the registered name otherwise."""
    return "BDCA" if model == REFERENCE else model


def citation_of(model: str) -> str:
    """A model's citation (the rivals' from `models.zoo.ZOO`; BDCA is the paper's)."""
    return ZOO[model].citation if model in ZOO else "Liang et al., BDCA (the paper)"


@dataclass
class CompareReport:
    """A written Table II (measured).

    Args:
        table: the score rows (BDCA first), as `harness.experiments.folds` writes its tables.
        paired: each rival minus BDCA, with intervals and verdicts.
        cost: one cost row per model (`COST_SCHEMA`).
        files: everything written.
        results: the runs behind it (every model, fold and seed).
    """

    table: pl.DataFrame
    paired: pl.DataFrame
    cost: pl.DataFrame
    files: list[Path]
    results: list[StageResult] = field(default_factory=list)


def check_models(models: Sequence[str]) -> list[str]:
    """The models to compare, BDCA first and each once.

    Raises:
        ConfigError: an unknown name (the message lists the stage-2 models).
    """
    known = stage2_models()
    bad = [m for m in models if m not in known]
    if bad:
        raise ConfigError(f"--models: {bad} not stage-2 models ({', '.join(known)})")
    rest = [m for m in dict.fromkeys(models) if m != REFERENCE]
    return [REFERENCE, *rest]


def time_train_step(cfg: Config, model: str, steps: int = TIMED_STEPS, device: str = "cpu") -> float:
    """Seconds per training step of a model at the config's window length and micro batch (random windows).

    A step is what `harness.stages.stage2` trains: the CCC loss (`stage2_loss`) forward, its backward and an AdamW step;
    one warm-up step is not timed. The global random state is left as it was.

    Args:
        cfg: the config (model dimensions, `windows.length`, `stage2.micro_batch`).
        model: a stage-2 model name.
        steps: steps timed.
        device: torch device.
    """
    B, L = cfg.stage2.micro_batch, cfg.windows.length
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = build_model(cfg.temporal_config(model)).to(device).train()
        g = torch.Generator().manual_seed(cfg.seed)
        batch = {"visual": torch.randn(B, L, cfg.visual_dim, generator=g),
                 "audio": torch.randn(B, L, cfg.audio_dim, generator=g),
                 "labels": torch.rand(B, L, 2, generator=g) * 2 - 1,
                 "pad_mask": torch.zeros(B, L, dtype=torch.bool),
                 "label_mask": torch.ones(B, L, dtype=torch.bool)}  # fmt: skip
        batch = {k: v.to(device) for k, v in batch.items()}
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        times = []
        for i in range(steps + 1):
            t0 = time.perf_counter()
            loss = stage2_loss(net, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device != "cpu":
                torch.cuda.synchronize()
            if i:  # the first step warms caches and allocators
                times.append(time.perf_counter() - t0)
    return float(np.mean(times))


def prediction_rate(run_dir: Path, cache: FeatureCache, videos: Sequence[str],
                    device: str = "cpu") -> tuple[float, int]:  # fmt: skip
    """Frames per second of whole-video prediction with a trained run (its features loaded beforehand).

    Args:
        run_dir: the trained stage-2 run.
        cache: the feature cache.
        videos: the videos to predict (the run's reported split).
        device: torch device.

    Returns:
        (frames per second, frames predicted).
    """
    cfg, model, stats = load_trained(run_dir, device)
    forward = module_forward(model, device)
    streams = [load_video_streams(cache, v, cfg.features, stats) for v in videos]
    frames, seconds = 0, 0.0
    for visual, audio in streams:
        t0 = time.perf_counter()
        predict_arrays(forward, visual, audio, cfg.windows.length, cfg.windows.stride, cfg.runtime.eval_batch)
        seconds += time.perf_counter() - t0
        frames += visual.shape[0]
    return (frames / seconds if seconds > 0 else math.nan), frames


def measure_cost(cfg: Config, model: str, run: StageResult, cache: FeatureCache, device: str = "cpu") -> dict[str, Any]:
    """One cost row (`COST_SCHEMA`) of a model, measured now in this process.

    Args:
        cfg: the config.
        model: the stage-2 model name.
        run: one of its trained runs (its reported split is predicted for the frames per second).
        cache: the feature cache.
        device: torch device of the timings.
    """
    config = cfg.temporal_config(model)
    with torch.random.fork_rng(devices=[]):
        net = build_model(config)
    fps, frames = prediction_rate(Path(run.run_dir), cache, _reported_videos(run), device)
    return {"row": display_name(model), "model": model, "citation": citation_of(model),
            "params": count_params(net).total, "gflops_window": count_flops(config, T=cfg.windows.length) / 1e9,
            "train_step_ms": 1e3 * time_train_step(cfg, model, device=device), "predict_fps": fps,
            "predict_frames": frames, "backend": getattr(net, "ssm_backend", "torch"), "device": device,
            "threads": torch.get_num_threads()}  # fmt: skip


def _reported_videos(run: StageResult) -> list[str]:
    """The videos of a run's reported split, from its saved predictions."""
    return sorted(load_predictions(RunDir(run.run_dir).split_predictions(run.reported_on)))


def self_reported_table() -> pl.DataFrame:
    """The paper's Table II: the 8th ABAW teams' own numbers (own features, splits, ensembles), as printed."""
    rows = [{"row": e.name, "valence": e.ccc_v, "arousal": e.ccc_a, "average": e.p_va, "source": e.source}
            for e in paper_rows("II")]  # fmt: skip
    return pl.DataFrame(rows, schema={"row": pl.Utf8, "valence": pl.Float64, "arousal": pl.Float64,
                                      "average": pl.Float64, "source": pl.Utf8})  # fmt: skip


def _cost_markdown(cost: pl.DataFrame) -> str:
    shown = cost.select(["row", "params", "gflops_window", "train_step_ms", "predict_fps", "backend"])
    return table_markdown(shown.rename({"gflops_window": "GFLOPs/window", "train_step_ms": "train step ms",
                                        "predict_fps": "predict frames/s"}), floats=3)  # fmt: skip


def run_compare(
    cfg: Config,
    layout: AffWild2Layout,
    cache: FeatureCache,
    out: str | Path,
    models: Sequence[str],
    folds: Sequence[int] | None = None,
    *,
    seeds: Sequence[int] | None = None,
    resume: bool = False,
    progress: bool | None = None,
    console: Any = None,
    on_result: Callable[[StageResult], None] | None = None,
    strategy: Strategy | None = None,
) -> CompareReport:
    """Train (or reuse) every model on the same folds and seeds, and write Table II (measured).

    Args:
        cfg: the config (its `zoo` section sizes the rivals, its `model` section BDCA).
        layout: the dataset layout.
        cache: the feature cache.
        out: the experiment folder (shared with `harness folds` and `harness ablate`).
        models: stage-2 models; BDCA is added first when missing (every row is paired against it).
        folds: folds (default: `experiment.ablation_folds`).
        seeds: stage-2 seeds (default: `Config.stage2_seeds`).
        resume: continue interrupted runs from their checkpoints.
        progress: progress bars (default: the config's).
        console: a rich console to print the tables on (None: print nothing).
        on_result: called after each run (with an `ExperimentRun`).
        strategy: the run's processes (None: this process's own).

    Raises:
        ConfigError: an unknown model.
    """
    strategy = current_strategy(strategy)
    out = Path(out)
    names = check_models(models)
    folds = list(cfg.experiment.ablation_folds if folds is None else folds)
    seeds = _seeds_of(cfg, seeds)
    # Every row is a variant of the config as it is (`run_dir_for`): with `model.name` BDCA its row is the folds'
    # own run (`<out>/folds/`); with another model it lives under `<out>/ablation/bdca/`, never in another's folder.
    setup = ExperimentSetup(cfg, layout, cache, out, seeds, resume, progress, console, on_result,
                            strategy).with_stage1()  # fmt: skip
    grids: dict[str, list[list[ExperimentRun]]] = {}
    for m in names:
        grids[m] = train_row(setup, folds, TableRow.model(m), cfg.features.visual)
    rows, results, stats = [], [], {}
    paper = {e.name: (e.ccc_v, e.ccc_a, e.p_va) for e in paper_rows("II")}
    for m, grid in grids.items():
        results += _flat(grid)
        _intervals(_flat(grid))
        stats[display_name(m)] = _grid_stats(grid)
        rows.append(_summary_row(display_name(m), grid, paper.get(SELF_REPORTED.get(m, "")), seeds))
    ref = display_name(REFERENCE)
    paired = _paired_table([_paired_row(display_name(m), ref, stats[display_name(m)], stats[ref], seeds)
                            for m in names if m != REFERENCE])  # fmt: skip
    fold_txt = ",".join(map(str, folds))
    title = (f"Table II (measured): BDCA and the field's fusion models trained here (folds {fold_txt}, {cfg.name} "
             f"config{_seed_title(seeds)})")  # fmt: skip
    files: list[Path] = []
    cost = pl.DataFrame(schema=COST_SCHEMA)
    if strategy.on_main:
        device = str(strategy.device)
        cost = pl.DataFrame([measure_cost(cfg, m, grids[m][0][0], cache, device) for m in names], schema=COST_SCHEMA)
        df, files = _write_table(out, TABLE, rows, title, console, paired, seeds)
        files += _write_extras(out, cost, cfg, folds, seeds)
        if console is not None:
            print_table(cost.select(["row", "params", "gflops_window", "train_step_ms", "predict_fps", "backend"]),
                        "Table II (measured): cost, measured in this run on this device", console=console)
    else:
        df = pl.DataFrame(rows)
    return CompareReport(df, paired, cost, files, results)


def _write_extras(out: Path, cost: pl.DataFrame, cfg: Config, folds: Sequence[int], seeds: Sequence[int]) -> list[Path]:
    """The cost table, the self-reported table, and both appended to the Markdown and JSON of the scores."""

    cost_csv = ExperimentDir(out).cost_file
    atomic_write_text(cost_csv, cost.write_csv(float_precision=4))
    paper = self_reported_table()
    paper_csv = ExperimentDir(out).self_reported_file
    atomic_write_text(paper_csv, paper.write_csv(float_precision=3))
    md = ExperimentDir(out).table_file(TABLE, ".md")
    epochs = cfg.stage2.epochs
    text = read_text(md, "Table II markdown") + (
        f"\nEvery row: the same features, normalisation, windows, {epochs} epochs with the best validation epoch "
        f"kept, folds {','.join(map(str, folds))} and seeds {','.join(map(str, seeds))}.\n"
        "\n#### Cost (measured in this run, on this device)\n\n" + _cost_markdown(cost)
        + f"\nGFLOPs: one forward pass of a {cfg.windows.length}-frame window; train step: forward, backward and "
        f"AdamW on {cfg.stage2.micro_batch} windows, mean of {TIMED_STEPS} after a warm-up; predict: whole videos "
        "of the reported split, features loaded.\n"
        "\nThe paper columns: BDCA's and Charon's (the mamba_va paper's) rows of the paper's Table II, self-reported.\n"
        "\n#### Table II of the paper (self-reported by the 8th ABAW teams; not comparable: each team's own "
        "features, splits, ensembles and post-processing)\n\n" + table_markdown(paper.drop("source"))
    )  # fmt: skip
    atomic_write_text(md, text)
    js = ExperimentDir(out).table_file(TABLE, ".json")
    doc = read_json(js, "Table II JSON")
    doc["cost"] = cost.to_dicts()
    doc["self_reported"] = paper.to_dicts()
    atomic_write_text(js, json.dumps(_json_safe(doc), indent=1) + "\n")
    return [cost_csv, paper_csv]
