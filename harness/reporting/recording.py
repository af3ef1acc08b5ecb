"""Recording the quick demo's quality floors for the CI check (`harness leaderboard --record-quick`).

The runs, each a fresh `python -m harness.cli demo --quick` process (nothing of this process's threads, RNGs or
loaded kernels leaks in; `ATEN_CPU_CAPABILITY` is read by torch at start-up only), each in its own folder of WORKDIR
named by what it varies (`seed<s>-<level>-t<threads>`):

- every training seed of `--seeds` natively at 1 thread (`--set seed=S` reaches stage 1, stage 2 and the baseline);
- the reference seed (0, the seed CI runs) again natively: it must agree with the first to the last digit, or
  nothing is recorded (the determinism the exact reference rests on);
- the reference seed under every lower ATen kernel level of this CPU, and natively at 2 threads.

All runs but the repeat are samples of the floors (`harness.reporting.floors.measure_floors`). A finished run folder
(its
scores.json written) is reused, so an interrupted recording resumes; delete WORKDIR to record another commit.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from core.errors import HarnessError
from core.safe_read import ReadError, read_json
from harness.folders.demo import DemoDir
from harness.reporting.floors import MIN_RUNS, Run, measure_floors
from harness.runtime.childenv import child_env
from harness.runtime.fingerprint import native_aten_levels
from submissions.leaderboard import BAND_CAP, fixture_scores, record_scores

REFERENCE_SEED = 0
"""The seed the quick demo (and so CI) runs: the reference run of a recording is this seed's."""


def flat_scores(data: Mapping) -> dict[str, float]:
    """Flat `{key/metric: value}` of a scores.json's parsed content (the three CCC metrics and plain numbers)."""
    flat: dict[str, float] = {}
    for key, val in data.items():
        if isinstance(val, dict):
            for m in ("ccc_v", "ccc_a", "p_va"):
                if isinstance(val.get(m), int | float):
                    flat[f"{key}/{m}"] = float(val[m])
        elif isinstance(val, int | float) and not isinstance(val, bool):
            flat[key] = float(val)
    return flat


def run_quick_demo(out: Path, level: str | None = None, extra_env: Mapping[str, str] | None = None,
                   timeout_s: float = 1800, overrides: Sequence[str] = ()) -> dict:  # fmt: skip
    """Run `harness demo --quick --out OUT` in a fresh process; return its parsed scores.json.

    Args:
        out: the demo folder (a finished one is reused by the demo's own resumption).
        level: `ATEN_CPU_CAPABILITY` for the process (None: the CPU's native level).
        extra_env: more environment for the process.
        timeout_s: give up after this long.
        overrides: `--set` values for the demo's config, e.g. `("seed=1", "runtime.threads=2")`.

    Raises:
        HarnessError: the demo failed (its last lines of output are in the message).
    """
    # Not the caller's kernel cap (the child's level is `level`), nor its torch.distributed rendezvous.
    env = child_env({"ATEN_CPU_CAPABILITY": level} if level is not None else None, drop=("ATEN_CPU_CAPABILITY",))
    env.update(extra_env or {})
    sets = [a for o in overrides for a in ("--set", o)]
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "demo", "--quick", "--out", str(out), *sets],
                          env=env, capture_output=True, text=True, timeout=timeout_s, check=False)  # fmt: skip
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise HarnessError(f"{out}: error: the quick demo (ATEN_CPU_CAPABILITY={level or 'native'}) exited with "
                           f"{proc.returncode}:\n{tail}")  # fmt: skip
    return read_json(DemoDir(out).scores_file, "scores file", allow_nan=True)


@dataclass(frozen=True)
class PlannedRun:
    """One quick demo of a recording.

    Args:
        seed: its training seed (`--set seed=S`).
        level: its `ATEN_CPU_CAPABILITY` (None: native).
        threads: its intra-op threads (`--set runtime.threads=T`).
        repeat: the reference run again (checks determinism; not a sample).
    """

    seed: int
    level: str | None = None
    threads: int = 1
    repeat: bool = False

    @property
    def name(self) -> str:
        return f"seed{self.seed}-{self.level or 'native'}-t{self.threads}" + ("-again" if self.repeat else "")

    @property
    def overrides(self) -> tuple[str, ...]:
        return (f"seed={self.seed}", f"runtime.threads={self.threads}")


def plan_runs(seeds: Sequence[int], levels: Sequence[str]) -> list[PlannedRun]:
    """The runs of a recording (module docstring), the reference first.

    Args:
        seeds: training seeds, at least `MIN_RUNS` distinct, `REFERENCE_SEED` among them.
        levels: this CPU's kernel levels, lowest first (`native_aten_levels`); all but the last are run capped.

    Raises:
        HarnessError: too few seeds, repeated seeds, or no reference seed.
    """
    if len(set(seeds)) != len(seeds):
        raise HarnessError(f"--seeds {','.join(map(str, seeds))}: a seed is repeated")
    if len(seeds) < MIN_RUNS:
        raise HarnessError(f"--seeds: the spread needs at least {MIN_RUNS} training seeds (got {len(seeds)})")
    if REFERENCE_SEED not in seeds:
        raise HarnessError(f"--seeds must include {REFERENCE_SEED}, the seed the quick demo and CI run")
    rest = [s for s in seeds if s != REFERENCE_SEED]
    return [PlannedRun(REFERENCE_SEED), PlannedRun(REFERENCE_SEED, repeat=True), *map(PlannedRun, rest),
            *[PlannedRun(REFERENCE_SEED, level=lv) for lv in levels[:-1]], PlannedRun(REFERENCE_SEED, threads=2)]


Runner = Callable[[Path, str | None, Sequence[str]], dict]
"""Runs one quick demo (folder, ATEN level or None, --set overrides) and returns its parsed scores.json."""


def _run_demo(out: Path, level: str | None, overrides: Sequence[str]) -> dict:
    return run_quick_demo(out, level, overrides=overrides)


def _finished(out: Path, plan: PlannedRun) -> dict | None:
    """A run folder's parsed scores.json when it finished as `plan` asks (threads, kernel cap), else None."""
    try:
        data = read_json(DemoDir(out).scores_file, "scores file", allow_nan=True)
    except ReadError:  # missing or damaged: the run did not finish, so it runs again
        return None
    plat = data.get("platform") if isinstance(data, dict) else None
    if not isinstance(plat, dict) or plat.get("threads") != plan.threads \
            or (plat.get("aten_capability_env") or None) != plan.level:  # fmt: skip
        raise HarnessError(f"{DemoDir(out).scores_file}: error: made with {plat and plat.get('threads')} thread(s) and "
                           f"ATEN_CPU_CAPABILITY={(plat or {}).get('aten_capability_env') or 'native'}, not as "
                           f"{plan.name} asks; remove the folder to run it again")  # fmt: skip
    return data


def record_quick(work: Path, recorded: Path, seeds: Sequence[int] = (0, 1, 2, 3, 4), accept_drop: str | None = None,
                 cap: float = BAND_CAP, console: Console | None = None,
                 runner: Runner = _run_demo) -> dict:  # fmt: skip
    """Run (or reuse) the quick demos of a recording, measure the floors and record them.

    Args:
        work: folder for the runs, one subfolder per run (`PlannedRun.name`); finished ones are reused.
        recorded: the recorded leaderboard file to write.
        seeds: training seeds (`plan_runs`).
        accept_drop: why a lower floor is accepted (`submissions.leaderboard.record_scores`).
        cap: the widest band.
        console: where progress goes.
        runner: what runs one demo (tests pass a fake).

    Raises:
        HarnessError: the two reference runs differ (nothing is recorded: the pipeline is not deterministic here), a
            run failed, or the floors drop without `accept_drop`.
    """
    console = console or Console()
    levels = native_aten_levels()
    plans = plan_runs(list(seeds), levels)
    work.mkdir(parents=True, exist_ok=True)
    console.print(f"kernel levels of this CPU: {', '.join(levels)}; {len(plans)} quick demos under {work}",
                  highlight=False)
    results: dict[str, dict] = {}
    for i, plan in enumerate(plans, 1):
        out = work / plan.name
        done = _finished(out, plan)
        console.print(f"[{i}/{len(plans)}] {plan.name}: " + ("reused" if done else "running"), highlight=False)
        results[plan.name] = done if done is not None else runner(out, plan.level, plan.overrides)
    ref, again = plans[0], plans[1]
    a, b = flat_scores(results[ref.name]), flat_scores(results[again.name])
    if a != b:
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        raise HarnessError(f"{work}: error: two native runs of seed {ref.seed} differ in {len(diff)} score(s) "
                           f"({', '.join(diff[:5])}); nothing recorded")  # fmt: skip
    platform = results[ref.name].get("platform")
    if not isinstance(platform, dict):
        raise HarnessError(f"{DemoDir(work / ref.name).scores_file}: error: no platform fingerprint")
    runs = [Run(p.name, flat_scores(results[p.name]), p.seed, p.level, p.threads) for p in plans if not p.repeat]
    floors, k, reason = measure_floors(runs, cap=cap)
    out = record_scores({**fixture_scores(), **a}, platform, recorded, floors={key: f.to_json() for key, f in
                        floors.items()}, samples=[r.to_json() for r in runs], k=k, k_reason=reason, cap=cap,
                        accept_drop=accept_drop)  # fmt: skip
    capped = sorted(key for key, f in floors.items() if f.capped and f.guarded)
    noisy = sorted(key for key, f in floors.items() if not f.guarded)
    console.print(f"recorded floors of {len(floors)} keys from {len(runs)} runs into {recorded}; {reason}",
                  highlight=False, soft_wrap=True)
    if capped:
        console.print(f"{len(capped)} key(s) guarded at the cap {cap:g} (k x spread is wider; at the cap each one's "
                      f"own false-alarm rate stays within alpha): {', '.join(capped)}", soft_wrap=True, highlight=False)
    if noisy:
        console.print(f"[yellow]{len(noisy)} key(s) vary too much to guard[/] (the check lists them as noisy and "
                      f"never fails on them): {', '.join(noisy)}", soft_wrap=True)
    return out
