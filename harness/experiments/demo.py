"""`harness demo`: the whole pipeline on the generated mini Aff-Wild2, on CPU, with nothing downloaded.

Stages (each resumable: a rerun skips what is done with the same configuration):
1. corpus: `make_corpus` writes the demo corpus in the Aff-Wild2 layout (raw videos with audio, cropped_aligned,
   annotations, test list, sample file, organiser test labels);
2. preprocess: per-frame audio features (MFCC 39 + eGeMAPS 23; VGGish is off: no weights offline) into the
   feature cache; the corpus ships its aligned crops, as Aff-Wild2 does, and one test video goes through the face
   detector as a check of detection + alignment on the raw video;
3. stage 1: MAE pre-training of a small ViT on the training frames, hierarchical fine-tuning, CLS features;
4. stage 2: BDCA on the config's folds (Table I), the ablations (Table IV) and Table III;
5. the fold-0 BDCA run predicts the test videos; its submission is validated, packaged, and scored against the
   organiser labels; tables beside the paper's, plots, and `scores.json` for the CI leaderboard check.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.panel import Panel

from core.atomic import atomic_write_text
from core.ownership import check_plain_name, claim_folder
from harness.config import Config, load_config
from harness.data.datasets import load_labels, load_video_streams
from harness.data.windows import window_starts
from harness.experiments.ablation import run_ablation
from harness.experiments.compare import run_compare
from harness.experiments.ensemble import EnsembleResult, Estimate, make_ensemble
from harness.experiments.folds import run_folds
from harness.folders.cache import OUTPUT_LAYOUT, PreprocessDir
from harness.folders.demo import DEMO_FILES, DemoDir
from harness.folders.experiment import run_dir_for
from harness.folders.run import RunDir
from harness.reporting.plots import curve_keys, plot_curves, plot_gates, plot_histograms, plot_traces
from harness.reporting.report import write_report
from harness.reporting.tables import print_table
from harness.runtime.fingerprint import platform_fingerprint
from harness.runtime.progress import StepProgress, format_duration, overall_eta
from harness.runtime.resources import peak_rss, reset_peak_rss
from harness.stages.baseline import untrained_baseline
from harness.stages.predict import average_windows, load_predictions, load_trained, predict_arrays
from harness.stages.preprocess import PreprocessConfig, preprocess

DEMO_ROOT = Path("demo_runs")
DEMO_LAYOUT = (*DEMO_FILES, *OUTPUT_LAYOUT)
"""What the demo writes in its folder (claimed in the folder's ownership record, `core.ownership`)."""

STAGE_SHARES = {
    "quick": (27.9, 16.3, 35.6, 60.9, 1.6),  # a quick demo's seconds, ece7e75 on a quiet machine
    "demo": (88.0, 40.1, 319.8, 100.7, 1.4),  # a full demo's seconds, fresh clone of c54bf88 (docs/numbers.md)
}
"""Expected seconds of the five stages (corpus, preprocess, stage 1 + folds, ablations, report) per config: only
their shares matter, for the overall ETA (`overall_eta`), which scales them to the measured pace."""


@dataclass
class DemoResult:
    """Where everything is, and the headline numbers (`peak_rss_mib`: per stage, the peak resident set of this
    process during the stage and of its largest finished child so far; in timings.json beside the seconds)."""

    out: Path
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    oracle: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: dict[str, dict[str, float]] = field(default_factory=dict)


def _stage(console: Console, res: DemoResult, name: str, shares: tuple[float, ...] | None = None):
    """A context manager printing the stage (with the demo's overall ETA) and recording its wall time and peak memory.

    Args:
        console: where to print.
        res: the result whose timings it adds to.
        name: the stage's name.
        shares: every stage's expected seconds, in order (`STAGE_SHARES`); None prints no ETA.
    """
    from contextlib import contextmanager

    @contextmanager
    def cm():
        console.rule(f"[bold]{name}")
        if shares and res.timings:
            done = list(res.timings)
            elapsed = sum(res.timings.values())
            eta = overall_eta({str(i): s for i, s in enumerate(shares)}, [str(i) for i in range(len(done))], elapsed)
            console.print(f"demo: {len(done)} of {len(shares)} stages done in {format_duration(elapsed)}; overall "
                          f"ETA about {format_duration(eta)} more (from the stages' expected shares)", highlight=False,
                          soft_wrap=True)
        reset_peak_rss()  # the stage's own peak, not an earlier stage's (where Linux allows the reset)
        t0 = time.perf_counter()
        yield
        res.timings[name] = round(time.perf_counter() - t0, 1)
        res.peak_rss_mib[name] = peak_rss().as_dict()
        console.print(f"[dim]{name}: {res.timings[name]:.1f} s, peak RSS {res.peak_rss_mib[name]['self']:.0f} MiB[/]")

    return cm()


def _run_done(bar: StepProgress):
    """An `on_result` callback counting finished stage-2 runs on `bar` (with the run's name and score)."""

    def done(r) -> None:
        p = r.reported.get("p_va", float("nan"))
        bar.advance(info=f"{r.model} fold {r.fold}: P_VA {p:.3f}" + (" (reused)" if r.skipped else ""))

    return done


def demo_config(quick: bool, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The demo's config: `quick` for CI (every stage, smaller), `demo` otherwise."""
    return load_config("quick" if quick else "demo", list(overrides))


def _face_check(corpus: Path, layout, out: Path, console: Console) -> dict[str, float] | None:
    """Run detection + alignment on one test video's raw frames; compare with the frames where a face is shown."""
    from preprocessing.crops import extract_crops
    from preprocessing.faces.base import FaceError

    entry = next((e for e in layout.test if e.person is None and e.raw_video is not None), None)
    if entry is None:
        return None
    try:
        with StepProgress(f"face check {entry.name}", console=console, unit="frames", plain_interval_s=5.0) as bar:
            rep = extract_crops(entry.raw_video, DemoDir(out).face_check, video_name=entry.name, stride=2,
                                progress=lambda done, total: bar.update(done, total))
    except FaceError as exc:
        console.print(f"[yellow]face check skipped[/]: {exc}")
        return None
    shown = len(layout.crop_frames(entry.name))
    found = rep.with_face
    console.print(f"face check on {entry.name}: detector found a face in {found} of {rep.frames} frames; the "
                  f"corpus shows one in {shown} ({rep.fps:.1f} frames/s)")
    return {"frames": rep.frames, "found": found, "shown": shown}


def _with_ci(scores: dict[str, float], ci) -> dict[str, float | None]:
    """Scores plus `<metric>_ci_low` / `<metric>_ci_high` (the run's video-bootstrap interval; None without one)."""
    out: dict[str, float | None] = dict(scores)
    for m in ("ccc_v", "ccc_a", "p_va"):
        iv = ci[m] if ci is not None else None
        out[f"{m}_ci_low"] = iv.low if iv is not None and iv.defined else None
        out[f"{m}_ci_high"] = iv.high if iv is not None and iv.defined else None
    return out


def _scores_from_tables(cfg: Config, folds_report, ablation_reports) -> dict[str, dict[str, float | None]]:
    """scores.json's run entries: each run's reported ccc_v, ccc_a, p_va and their interval bounds."""
    out: dict[str, dict[str, float | None]] = {}
    for r in folds_report.results:
        out[f"{cfg.name}/fold{r.fold}/{r.model}"] = _with_ci(
            {k: float(r.reported[k]) for k in ("ccc_v", "ccc_a", "p_va")}, folds_report.interval(r))
    for rep in ablation_reports:
        for r in rep.results:
            feat = r.record.get("features", {}).get("visual", cfg.features.visual)
            tag = r.model if feat == cfg.features.visual else f"{r.model}_{feat}"
            out[f"{cfg.name}/table{rep.name}/fold{r.fold}/{tag}"] = _with_ci(
                {k: float(r.reported[k]) for k in ("ccc_v", "ccc_a", "p_va")}, rep.interval(r))
    return out


def _plots(cfg: Config, layout, cache, run_dir: Path, out: Path, fps: float,
           gates: dict[str, dict[str, np.ndarray]] | None = None) -> dict[str, Path]:  # fmt: skip
    from submissions.formats import read_annotation

    files: dict[str, Path] = {}
    test_npz = RunDir(run_dir).test_predictions
    preds = load_predictions(test_npz) if test_npz.is_file() else {}
    labelled = [e for e in layout.test if e.annotation is not None and e.name in preds]
    traces = {e.name: (load_labels(e.annotation, preds[e.name].shape[0]), preds[e.name]) for e in labelled[:3]}
    if traces:
        files["traces"] = plot_traces(DemoDir(out).plot("traces_test"), traces, fps=fps)
    train_labels = [read_annotation(e.annotation) for e in layout.train if e.annotation is not None]
    if labelled:
        lab = np.concatenate([load_labels(e.annotation, preds[e.name].shape[0]) for e in labelled])
        files["histograms"] = plot_histograms(DemoDir(out).plot("histograms_test"), lab,
                                              np.concatenate([preds[e.name] for e in labelled]))
    elif train_labels:
        files["histograms"] = plot_histograms(DemoDir(out).plot("histograms_train"), np.concatenate(train_labels))
    run = RunDir(run_dir)
    if run.metrics_file.is_file():
        recs = [r for r in run.read_metrics() if "epoch" in r]
        files["curves"] = plot_curves(DemoDir(out).plot("curves_fold0"), recs, keys=curve_keys(recs))
    video = labelled[0].name if labelled else None
    if video is not None and gates and video in gates:  # the whole video, windowed and averaged as predictions
        n = gates[video]["visual"].shape[0]
        files["gates"] = plot_gates(DemoDir(out).plot("gates_test"), gates[video], fps=fps,
                                    title=f"BDCA dynamic weights over all {n} frames of test video {video}")
    return files


def gate_traces(model, visual: np.ndarray, audio: np.ndarray, length: int, stride: int,
                batch: int = 16) -> dict[str, np.ndarray] | None:  # fmt: skip
    """BDCA's gates at every frame of one video: the windows of prediction, overlaps averaged as predictions are.

    Args:
        model: a temporal model (`AVTemporalModel.forward_with_gates` gives the gates; None for models without).
        visual: (N, Dv) normalised visual features.
        audio: (N, Da) normalised audio features.
        length: window length.
        stride: window stride.
        batch: windows per forward.

    Returns:
        stream ("visual", "audio") -> (N, 2) gates (G_0 original, G_1 cross-attended; rows sum to 1), or None when
        the model has no gates.
    """
    import torch

    per_batch: list[dict[str, np.ndarray] | None] = []

    def forward(v: torch.Tensor, a: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out, g = model.forward_with_gates(v, a, pad)
        per_batch.append(None if not g else {k: t.float().cpu().numpy() for k, t in g.items()})
        return out.float().cpu()

    model.eval()
    predict_arrays(forward, visual, audio, length, stride, batch)  # the same windows and batches as prediction
    if not per_batch or any(g is None for g in per_batch):
        return None
    starts = window_starts(visual.shape[0], length, stride)
    return {k: average_windows(visual.shape[0], starts, length, np.concatenate([g[k] for g in per_batch]))
            for k in per_batch[0]}  # fmt: skip


def _video_gates(run_dir: Path, cache, videos: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """video -> its gate traces (`gate_traces`) from a stage-2 run's best weights; {} when the model has no gates."""
    cfg, model, stats = load_trained(run_dir)
    out: dict[str, dict[str, np.ndarray]] = {}
    for video in videos:
        visual, audio = load_video_streams(cache, video, cfg.features, stats)
        g = gate_traces(model, visual, audio, cfg.windows.length, cfg.windows.stride)
        if g is None:
            return {}
        out[video] = g
    return out


def gate_stats(traces: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    """Mean and std over every frame of the given videos of each stream's weight on cross-attended features (G_1).

    Args:
        traces: video -> stream -> (N, 2) gates (`gate_traces`).

    Returns:
        stream -> {"mean", "std", "frames"}; the original features' weight G_0 = 1 - G_1 has the same std.
    """
    streams = sorted({s for g in traces.values() for s in g})
    out: dict[str, dict[str, float]] = {}
    for s in streams:
        g1 = np.concatenate([g[s][:, 1] for g in traces.values() if s in g])
        out[s] = {"mean": float(g1.mean()), "std": float(g1.std()), "frames": float(g1.size)}
    return out


def _compare(cfg: Config, layout, cache, exp: Path, console: Console, res: DemoResult,
             shares: tuple[float, ...] | None) -> list[Path]:
    """Table II (measured): the rivals of `experiment.compare_models` beside BDCA on the ablation folds (BDCA's runs
    are the folds' own, reused); nothing when the list is empty. Its seconds are a stage of their own in timings.json
    (outside the ETA's shares, as are the ensembles': 189 s and 1.5 s of the 752 s measured). Returns the files
    written."""
    if not cfg.experiment.compare_models:
        return []
    n = len(cfg.experiment.ablation_folds) * (1 + len(cfg.experiment.compare_models))
    with (_stage(console, res, "4/5 Table II (measured): the field's fusion models", None),
          StepProgress("compare runs", n, console=console, unit="runs") as bar):
        return run_compare(cfg, layout, cache, exp, cfg.experiment.compare_models, console=console,
                           on_result=_run_done(bar)).files


def _estimate_scores(est: Estimate) -> dict[str, float | None]:
    """An ensemble's test estimate as scores.json keeps a score (`_with_ci`), with the paired difference against
    its best single member (`minus_best_*`: the estimate and bounds of the paired interval)."""
    out = _with_ci(dict(zip(("ccc_v", "ccc_a", "p_va"), est.score, strict=True)), est.ci)
    if est.paired is not None:
        p = est.paired.p_va
        out.update({"minus_best_p_va": p.estimate, "minus_best_p_va_ci_low": p.low,
                    "minus_best_p_va_ci_high": p.high})  # fmt: skip
    return out


def _ensembles(cfg: Config, corpus: Path, cache_root: Path, exp: Path, out: Path, console: Console,
               res: DemoResult) -> list[EnsembleResult]:  # fmt: skip
    """With `experiment.ensembles`: the fold ensemble (the folds' BDCA models averaged; the cross-validation folds
    predict the test videos first) and a late fusion of the first ablation fold's Table IV model rows (weights
    searched per dimension on validation, estimated by nested cross-validation over its videos), as `harness
    ensemble` builds them; each one's test estimate and its difference from the best single member into the scores.
    """
    if not cfg.experiment.ensembles:
        return []
    plans: list[tuple[str, list[Path], str]] = []
    if len(cfg.experiment.folds) >= 2:
        plans.append(("folds", [run_dir_for(exp, cfg, k) for k in cfg.experiment.folds], "mean"))
    fold = cfg.experiment.ablation_folds[0] if cfg.experiment.ablation_folds else None
    rows = [r.name for r in cfg.experiment.rows if r.kind == "model"]
    if fold is not None and len(rows) >= 2:
        plans.append(("models", [run_dir_for(exp, cfg, fold, model=m) for m in rows], "search"))
    results = []
    for name, runs, mode in plans:
        result, _ = make_ensemble(runs, corpus, DemoDir(out).ensemble(name), cache=cache_root, mode=mode,
                                  per_dimension=mode == "search", predict=True)  # fmt: skip
        results.append(result)
        for est in result.estimates:
            line = (f"{result.kind} of {len(result.members)} runs ({mode}), {est.on}: P_VA {est.ci.p_va.cell()}; "
                    f"best single {est.best_member} {est.best_score[2]:.3f}")
            if est.paired is not None:
                line += f"; difference {est.paired.p_va.cell()} ({est.paired.p_va.verdict})"
            console.print(line, highlight=False, soft_wrap=True)
            if est.split == "test" and est.of == "ensemble":
                res.scores[f"{cfg.name}/test/ensemble/{name}"] = _estimate_scores(est)
    return results


def run_demo(quick: bool = False, out: str | Path | None = None, seed: int = 0,
             overrides: list[str] | tuple[str, ...] = (), console: Console | None = None) -> DemoResult:
    """Run every stage of the demo; return where everything is (see the module docstring)."""
    from preprocessing.affwild2 import AffWild2Layout
    from preprocessing.cache import FeatureCache
    from preprocessing.corpus import make_corpus
    from submissions.package import package_submission
    from submissions.scoring import score_files

    console = console or Console()
    cfg = demo_config(quick, overrides)
    out = Path(out) if out else DEMO_ROOT / check_plain_name(cfg.name, "the config's name")
    res = DemoResult(out=out)
    # The demo folder is the harness's only by its ownership record: a folder it did not write is refused.
    claim_folder(out, DEMO_LAYOUT, what="demo folder")
    corpus = DemoDir(out).corpus
    size = "ci" if quick else "default"

    shares = STAGE_SHARES.get(cfg.name)
    with _stage(console, res, f"1/5 corpus ({size}, seed {seed})", shares):
        with StepProgress("corpus", console=console, unit="frames") as bar:
            manifest = make_corpus(corpus, seed=seed, size=size,
                                   progress=lambda done, total, what: bar.update(done, total, info=what))
        res.oracle = {k: v.p_va for k, v in manifest.oracle.items()}
        # The ceilings the generator knows, so that each Table IV row reads against its own: the oracle for the
        # fusion rows, an ideal face-only reader for Only Visual, an ideal voice-only reader for Only Audio.
        ceilings = {"oracle": manifest.oracle, "visual": manifest.oracle_visual, "audio": manifest.oracle_audio}
        for kind, per_split in ceilings.items():
            if "Test" in per_split:
                o = per_split["Test"]
                res.scores[f"ceiling/{cfg.name}/test/{kind}"] = {"ccc_v": o.ccc_v, "ccc_a": o.ccc_a, "p_va": o.p_va}
        console.print(f"{len(manifest.videos)} videos; P_VA ceilings on the test split: " + ", ".join(
            f"{kind} {per_split['Test'].p_va:.3f}" for kind, per_split in ceilings.items() if "Test" in per_split),
            highlight=False)
    layout = AffWild2Layout.discover(corpus)
    fps = float(np.median([v.fps for v in manifest.videos]))

    with _stage(console, res, "2/5 preprocess (audio features; face check)", shares):
        console.print("[yellow]VGGish off[/]: its weights are not available offline; audio = MFCC 39 + eGeMAPS 23")
        with StepProgress("preprocess", console=console, unit="videos") as bar:
            results = preprocess(corpus, out, PreprocessConfig(faces=True, detect=False),
                                 progress=lambda video, done, total: bar.update(done, total, info=video))
        bad = [r for r in results if r.error]
        for r in bad:
            console.print(f"[red]{r.video}[/]: {r.error}")
        check = _face_check(corpus, layout, out, console)
        if check:
            res.scores["face_check"] = {"detected_fraction": check["found"] / max(1, check["shown"])}

    cache = FeatureCache(PreprocessDir(out).features)
    exp = DemoDir(out).experiments.path
    # Every fold once per seed, and the baseline on fold 0 where Table IV has its row (as `run_folds` trains them).
    with_baseline = any(r.kind == "baseline" for r in cfg.experiment.rows) and 0 in cfg.experiment.folds
    n_folds = (len(cfg.experiment.folds) + int(with_baseline)) * len(cfg.stage2_seeds)
    stage1 = "MAE pre-train, fine-tune, features" if cfg.stage1.finetune.epochs > 0 else "MAE pre-train, features"
    with (_stage(console, res, f"3-4/5 stage 1 ({stage1}) and stage 2 folds", shares),
          StepProgress("stage-2 folds", n_folds, console=console, unit="runs") as bar):
        folds_report = run_folds(cfg, layout, cache, exp, console=console, on_result=_run_done(bar))
    n_ablation = len(cfg.experiment.ablation_folds) * (
        len(cfg.experiment.ablation_models) + (2 if cfg.experiment.table3 else 0))  # Table III: 2 visual features
    with (_stage(console, res, "4/5 ablations (Tables IV and III)", shares),
          StepProgress("ablation runs", n_ablation, console=console, unit="runs") as bar):
        ablation_reports = run_ablation(cfg, layout, cache, exp, console=console, on_result=_run_done(bar))
    compare_files = _compare(cfg, layout, cache, exp, console, res, shares)
    if cfg.experiment.ensembles:
        with _stage(console, res, "4/5 ensembles (the folds averaged; Table IV's rows fused)", None):
            _ensembles(cfg, corpus, PreprocessDir(out).features, exp, out, console, res)
    res.scores.update(_scores_from_tables(cfg, folds_report, ablation_reports))
    if any(r.kind == "baseline" for r in cfg.experiment.rows):
        # What the trained baseline row must beat to show that it learnt: the same network, never trained.
        untrained = untrained_baseline(cfg, layout, cache, 0)
        ci = untrained.bootstrap()
        res.scores[f"{cfg.name}/fold0/baseline_untrained"] = _with_ci(
            {"ccc_v": untrained.total.ccc_v, "ccc_a": untrained.total.ccc_a, "p_va": untrained.total.p_va}, ci)
        cells = {m: ci[m].cell() if ci else f"{getattr(untrained.total, m):.3f}" for m in ("ccc_v", "ccc_a", "p_va")}
        console.print(f"untrained baseline (fold 0, test, never trained): CCC_V {cells['ccc_v']}, CCC_A "
                      f"{cells['ccc_a']}, P_VA {cells['p_va']}", highlight=False, soft_wrap=True)

    run0 = run_dir_for(exp, cfg, 0)
    with _stage(console, res, "5/5 submission, score, report", shares):
        run = RunDir(run0)
        zip_path = package_submission(run.submission_file, layout.sample_file, DemoDir(out).submission_zip,
                                      metadata=run.metadata()).path
        scored = score_files(run.submission_file, layout.test_labels_dir)
        test, ci = scored.total, scored.bootstrap()
        res.scores[f"{cfg.name}/test/{cfg.model.name}"] = _with_ci(
            {"ccc_v": test.ccc_v, "ccc_a": test.ccc_a, "p_va": test.p_va}, ci)
        oracle = manifest.oracle["Test"].p_va
        res.scores[f"{cfg.name}/test/oracle_fraction"] = {"p_va": test.p_va / oracle}
        import polars as pl

        cell = {m: ci[m].cell() if ci else f"{getattr(test, m):.3f}" for m in ("ccc_v", "ccc_a", "p_va")}
        print_table(pl.DataFrame({"submission": [str(zip_path)], "CCC_V": [cell["ccc_v"]], "CCC_A": [cell["ccc_a"]],
                                  "P_VA": [cell["p_va"]], "oracle P_VA": [oracle],
                                  "fraction of oracle": [test.p_va / oracle]}),
                    title="Test split, scored from the packaged submission", console=console)
        # The fold-0 model's gates over every test video: the gate plot and per-stream statistics in scores.json.
        cached = set(cache.videos())
        gates = _video_gates(run0, cache, [e.name for e in layout.test if e.name in cached])
        for stream, st in gate_stats(gates).items():
            res.scores[f"gates/{cfg.name}/fold0/{stream}"] = st
        res.files.update(_plots(cfg, layout, cache, run0, out, fps, gates))
        res.files["submission"] = zip_path
        res.files.update({f"table II measured ({f.name})": f for f in compare_files})
        for rep in [folds_report, *ablation_reports]:
            for f in rep.files:
                # Named by file, not by suffix: Tables III and IV write a table and its paired differences in
                # each format, and one name per suffix kept only the last of the two.
                res.files[f"table {rep.name} ({f.name})"] = f
        # The platform the arithmetic ran on, beside the scores: the CI check is exact only against the same one.
        scores_path = atomic_write_text(DemoDir(out).scores_file, json.dumps(
            {**res.scores, "platform": platform_fingerprint()}, indent=1, sort_keys=True))
        res.files["scores"] = scores_path
    # After the last stage, so that its seconds and peak are in the file too.
    timings = {**res.timings, "peak_rss_mib": res.peak_rss_mib}
    atomic_write_text(DemoDir(out).timings_file, json.dumps(timings, indent=1))
    # The HTML report last, from the files just written (timings.json included), and first in the summary: it is
    # the one file that shows everything.
    res.files = {"report": write_report(out, DemoDir(out).report_file), **res.files}
    lines = "\n".join(f"{k:>22}: {v}" for k, v in res.files.items())
    lines += "\n" + "\n".join(f"peak RSS {v['self']:>7.0f} MiB (children {v['children']:.0f}): {k}"
                              for k, v in res.peak_rss_mib.items())  # fmt: skip
    console.print(Panel(lines, title=f"demo finished in {sum(res.timings.values()):.0f} s: everything is under {out}"))
    return res
