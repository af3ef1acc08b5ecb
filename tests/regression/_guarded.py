"""The battery's view of the guarded run (the quick demo whose scores `harness leaderboard --check` guards): the
run itself, the parts a mutation reruns, the check's verdict on their scores (keys below their recorded floor or
above their ceiling), the named unit tests run with a mutation planted, and the results the session summary
prints (`tests/regression/conftest.py`).

What no mutation of a part can change is made once: the quick demo in a fresh process (corpus, preprocessing,
stage-1 features, every score). A stage-2 part reruns in a new experiment folder over the demo's feature cache,
reusing the stage-1 features the demo wrote (checked before a mutation is planted: a mutated stage must never
write into the cache every part shares). A part that redoes preprocessing's audio step or stage 1 does it into a
private copy of the cache holding the demo's other features.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.widths import AUDIO_FEATURE_WIDTHS
from harness.config import Config
from harness.experiments.ablation import run_ablation
from harness.experiments.demo import _scores_from_tables, demo_config
from harness.experiments.folds import run_folds
from harness.folders.experiment import run_dir_for
from harness.folders.run import STAGE1_DIR, RunDir
from harness.reporting.leaderboard import check
from harness.reporting.recording import flat_scores
from harness.runtime.childenv import child_env
from harness.runtime.fingerprint import platform_fingerprint
from harness.stages.preprocess import PreprocessConfig, preprocess
from harness.stages.stage1 import run_stage1
from preprocessing.affwild2 import AffWild2Layout
from preprocessing.audio import audio_feature_config
from preprocessing.cache import FeatureCache
from submissions.scoring import score_files
from tests.regression._mutations import AUDIO_PART, BDCA_PART, ENV, STAGE1_PART

REPO = Path(__file__).resolve().parents[2]

NAMED_TESTS_TIMEOUT_S = 600
"""The longest a mutation's named unit tests may run in their subprocess."""

AUDIO_STEP = frozenset(audio_feature_config()) | frozenset(AUDIO_FEATURE_WIDTHS)
"""The cached features preprocessing's audio step writes; stage 1 writes the others (visual, its mask, ...)."""

DEMO_PREPROCESS = PreprocessConfig(faces=True, detect=False)
"""The quick demo's preprocessing (`harness.experiments.demo.run_demo`): the corpus ships its crops, audio features
are made."""


@dataclass(frozen=True)
class GuardedRun:
    """The unmutated quick demo, and what a part rerun reads from it.

    Args:
        out: the demo folder.
        cfg: the quick demo's config (`harness.experiments.demo.demo_config(quick=True)`).
        layout: its corpus.
        cache: its feature cache (audio and stage-1 visual features).
        scores: its flat scores (`harness.reporting.recording.flat_scores` of scores.json).
    """

    out: Path
    cfg: Config
    layout: AffWild2Layout
    cache: FeatureCache
    scores: dict[str, float]


def open_guarded_run(out: Path) -> GuardedRun:
    """Open a finished quick demo (the session's, `tests/conftest.py`: a fresh process at this process's ATen
    kernel level) as the guarded run."""
    data = json.loads((out / "scores.json").read_text(encoding="utf-8"))
    return GuardedRun(out, demo_config(quick=True), AffWild2Layout.discover(out / "corpus"),
                      FeatureCache(out / "features"), flat_scores(data))  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Parts of the guarded run
# ---------------------------------------------------------------------------------------------------------------


def experiment_dir(work: Path) -> Path:
    """The experiment folder of a part rerun in `work` (beside it, a part's private feature cache)."""
    return work / "experiment"


def prepare_part(g: GuardedRun, work: Path) -> None:
    """Check that a part rerun in `work` reuses the demo's cached stage-1 features (run it before planting).

    Raises:
        AssertionError: stage 1 would train again (its features are not in the cache under this config's hash):
            a planted mutation could then write into the cache every part shares.
    """
    res = run_stage1(g.cfg, g.layout, g.cache, experiment_dir(work) / STAGE1_DIR, progress=False)
    assert res.skipped, f"{work}: stage 1 did not reuse the guarded run's features in {g.out / 'features'}"


def _bdca_fold0(g: GuardedRun, exp: Path) -> dict[str, dict[str, float | None]]:
    """The configured model on fold 0: Table I's row, its Table IV row and the packaged submission's test score
    (keys as the demo's scores.json names them)."""
    cfg = g.cfg.replace(**{"experiment.ablation_models": [g.cfg.model.name]})  # no baseline row: not this part
    folds = run_folds(cfg, g.layout, g.cache, exp, folds=[0], progress=False)
    ablation = run_ablation(cfg, g.layout, g.cache, exp, folds=[0], models=[cfg.model.name], table3=False,
                            progress=False)  # fmt: skip
    scores = _scores_from_tables(cfg, folds, ablation)
    # The demo's last stage scores the submission file the fold-0 run wrote, against the organisers' labels.
    test = score_files(RunDir(run_dir_for(exp, cfg, 0)).submission_file, g.layout.test_labels_dir).total
    scores[f"{cfg.name}/test/{cfg.model.name}"] = {"ccc_v": test.ccc_v, "ccc_a": test.ccc_a, "p_va": test.p_va}
    oracle = g.scores.get(f"ceiling/{cfg.name}/test/oracle/p_va")
    if oracle:
        scores[f"{cfg.name}/test/oracle_fraction"] = {"p_va": test.p_va / oracle}
    return scores


def _carry(g: GuardedRun, cache: FeatureCache, keep: Callable[[str], bool]) -> GuardedRun:
    """The guarded run over `cache`, after copying into it the demo's features that `keep` selects, with their
    hashes (a private cache a mutated stage may rewrite without touching the one every other part shares)."""
    for video in g.cache.videos():
        manifest = g.cache.manifest(video)
        top = {k: manifest[k] for k in ("n_frames", "fps") if manifest.get(k) is not None}
        for name, rec in manifest["features"].items():
            if keep(name):
                array = g.cache.load(video, [name])[name]
                cache.save(video, name, array, rec["config_hash"], {**rec.get("meta", {}), **top,
                                                                     "version": rec.get("version")})  # fmt: skip
    cache.close()
    return dataclasses.replace(g, cache=cache)


def _audio_then_bdca(g: GuardedRun, work: Path) -> dict[str, dict[str, float | None]]:
    """Preprocessing's audio step again (the demo's settings) into a new folder, the demo's stage-1 features copied
    into its cache, then `_bdca_fold0` on it."""
    out = work / "preprocessed"
    results = preprocess(g.out / "corpus", out, DEMO_PREPROCESS)
    bad = [f"{r.video}: {r.error}" for r in results if r.error]
    assert not bad, f"{out}: preprocessing failed: {bad}"
    mine = _carry(g, FeatureCache(out / "features"), lambda name: name not in AUDIO_STEP)
    return _bdca_fold0(mine, experiment_dir(work))


def _stage1_then_bdca(g: GuardedRun, work: Path) -> dict[str, dict[str, float | None]]:
    """`_bdca_fold0` over a private cache holding only the demo's audio features, so that its stage-1 step trains
    stage 1 again and extracts its features there."""
    mine = _carry(g, FeatureCache(work / "features"), lambda name: name in AUDIO_STEP)
    scores = _bdca_fold0(mine, experiment_dir(work))
    made = [v for v in mine.cache.videos() if g.cfg.features.visual in mine.cache.manifest(v)["features"]]
    assert made, f"{work / 'features'}: stage 1 extracted no visual features"
    return scores


PARTS: dict[str, Callable[[GuardedRun, Path], Mapping[str, Any]]] = {
    BDCA_PART: lambda g, work: _bdca_fold0(g, experiment_dir(work)), AUDIO_PART: _audio_then_bdca,
    STAGE1_PART: _stage1_then_bdca,
}  # fmt: skip
"""Part name -> its rerun: (guarded run, new work folder) -> scores.json-shaped entries."""


def rerun_part(part: str, g: GuardedRun, work: Path) -> dict[str, float]:
    """Flat scores of one part of the guarded run, rerun in the new folder `work` (checked with `prepare_part`)."""
    return flat_scores(PARTS[part](g, work))


# ---------------------------------------------------------------------------------------------------------------
# The check's verdict
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What `harness leaderboard --check` says of a part's scores.

    Args:
        dropped: guarded keys below their floor (or not finite).
        rose: guarded keys above their ceiling.
        compared: guarded run keys the scores held.
        mode: the check's mode (`floors`).
    """

    dropped: list[str]
    rose: list[str]
    compared: list[str]
    mode: str

    @property
    def ok(self) -> bool:
        return not self.dropped and not self.rose


def verdict(scores: Mapping[str, float]) -> Verdict:
    """Check a part's flat scores against the recorded floors as `harness leaderboard --check` does, on this
    process's platform; keys the part does not produce are absent, not failures."""
    _table, res = check(dict(scores), platform=platform_fingerprint())
    compared = [r.key for r in res.rows if r.mode != "fixture" and r.status != "absent"]
    return Verdict(list(res.dropped), list(res.rose), compared, res.mode)


def check_catch(v: Verdict, scores: Mapping[str, float], g: GuardedRun) -> list[str]:
    """The catcher lines of a verdict: one per kind of move (dropped, rose) naming every moved key, with the
    unmutated demo's value and the part's."""

    def moved(key: str) -> str:
        before = g.scores.get(key)
        after = scores.get(key, math.nan)
        return f"{key} ({before:+.4f} -> {after:+.4f})" if before is not None else f"{key} (-> {after:+.4f})"

    return [f"check ({v.mode}): {kind} {', '.join(moved(k) for k in keys)}"
            for kind, keys in (("dropped", v.dropped), ("rose", v.rose)) if keys]  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Named unit tests with a mutation planted
# ---------------------------------------------------------------------------------------------------------------

_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


@dataclass(frozen=True)
class NamedRun:
    """The outcome of unit tests run in a subprocess with the battery's plugin loaded.

    Args:
        returncode: pytest's exit code (0 passed, 1 some failed, other: the run itself went wrong).
        failed: node ids pytest reported failed or erroring.
        tail: the output's last lines.
    """

    returncode: int
    failed: list[str]
    tail: str


def run_named_tests(tests: Sequence[str], mutation: str | None) -> NamedRun:
    """Run unit tests in a fresh pytest process with `mutation` planted (None: nothing planted).

    Args:
        tests: pytest node ids, relative to the repository root.
        mutation: a mutation's name (`tests.regression._mutations.MUTATIONS`).
    """
    env = child_env({ENV: mutation} if mutation else None, drop=(ENV,))
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "-p", "tests.regression._mutations",
           *tests]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=NAMED_TESTS_TIMEOUT_S,
                          check=False)  # fmt: skip
    out = proc.stdout + proc.stderr
    failed = sorted(set(_FAILED.findall(out)))
    return NamedRun(proc.returncode, failed, "\n".join(out.splitlines()[-15:]))


# ---------------------------------------------------------------------------------------------------------------
# Results for the session summary
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One mutation's outcome.

    Args:
        name: the mutation.
        area: what it breaks.
        catchers: what caught it (named tests, moved keys); empty: missed.
        notes: what else the battery saw (e.g. keys within their band).
        checked: a part of the guarded run was rerun with it and checked.
        tested: named unit tests were run with it.
    """

    name: str
    area: str
    catchers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: bool = False
    tested: bool = False


RESULTS: list[Outcome] = []
"""The outcomes of this session's mutation tests, in the order they ran."""


def summary_lines(results: Sequence[Outcome], planned: int) -> list[str]:
    """The battery's summary: the catch rate, then each mutation with what caught it.

    Args:
        results: the outcomes.
        planned: how many mutations the battery holds (more than ran when some were deselected).
    """
    caught = sum(1 for r in results if r.catchers)
    head = f"planted-regression battery: {caught} of {len(results)} caught"
    if len(results) < planned:
        head += f" ({planned - len(results)} of the battery's {planned} mutations not run in this session)"
    checked, tested = [r for r in results if r.checked], [r for r in results if r.tested]
    by_check = sum(1 for r in checked if any(c.startswith("check") for c in r.catchers))
    by_test = sum(1 for r in tested if any(c.startswith("test") for c in r.catchers))
    lines = [head, f"  by the leaderboard check: {by_check} of the {len(checked)} rerun on the guarded run; "
                   f"by named unit tests: {by_test} of {len(tested)}"]  # fmt: skip
    for r in results:
        lines.append(f"  {'caught' if r.catchers else 'MISSED'}: {r.name} ({r.area})")
        lines.extend(f"      by {c}" for c in r.catchers)
        lines.extend(f"      note: {n}" for n in r.notes)
    return lines
