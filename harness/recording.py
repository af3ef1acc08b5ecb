"""Recording the quick demo's scores for the CI check: natively twice (they must agree) and under every lower ATen
kernel level this machine supports (their spread sets the cross-platform band of `submissions.leaderboard`).

Each run is a fresh `python -m harness.cli demo --quick` process, so nothing of this process's state (threads,
RNGs, loaded kernels) leaks into the recording; `ATEN_CPU_CAPABILITY` is read by torch at start-up only.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console

from core.errors import HarnessError
from core.safe_read import read_json
from harness.childenv import child_env
from harness.fingerprint import native_aten_levels
from submissions.leaderboard import fixture_scores, record_scores


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
                   timeout_s: float = 1800) -> dict:  # fmt: skip
    """Run `harness demo --quick --out OUT` in a fresh process; return its parsed scores.json.

    Args:
        out: the demo folder (a finished one is reused by the demo's own resumption).
        level: `ATEN_CPU_CAPABILITY` for the process (None: the CPU's native level).
        extra_env: more environment for the process.
        timeout_s: give up after this long.

    Raises:
        HarnessError: the demo failed (its last lines of output are in the message).
    """
    # Not the caller's kernel cap (the child's level is `level`), nor its torch.distributed rendezvous.
    env = child_env({"ATEN_CPU_CAPABILITY": level} if level is not None else None, drop=("ATEN_CPU_CAPABILITY",))
    env.update(extra_env or {})
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "demo", "--quick", "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=timeout_s, check=False)  # fmt: skip
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise HarnessError(f"{out}: error: the quick demo (ATEN_CPU_CAPABILITY={level or 'native'}) exited with "
                           f"{proc.returncode}:\n{tail}")  # fmt: skip
    return read_json(out / "scores.json", "scores file")


def record_quick(work: Path, recorded: Path, console: Console | None = None) -> dict:
    """Run the quick demo natively twice and once per lower kernel level, then record the native scores.

    Args:
        work: folder for the runs (`native`, `native-again`, `<level>`); each must not hold an older run.
        recorded: the recorded leaderboard file to write.
        console: where progress goes.

    Raises:
        HarnessError: the two native runs differ (nothing is recorded: the pipeline is not deterministic here).
    """
    console = console or Console()
    levels = native_aten_levels()
    native_level = levels[-1]
    work.mkdir(parents=True, exist_ok=True)
    console.print(f"kernel levels of this CPU: {', '.join(levels)} (native: {native_level})")
    runs: dict[str, dict] = {}
    for name, level in [("native", None), ("native-again", None), *[(lv, lv) for lv in levels[:-1]]]:
        console.print(f"quick demo: {name} -> {work / name}", highlight=False)
        runs[name] = run_quick_demo(work / name, level)
    a, b = flat_scores(runs["native"]), flat_scores(runs["native-again"])
    if a != b:
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        raise HarnessError(f"{work}: error: two native quick demos differ in {len(diff)} score(s) "
                           f"({', '.join(diff[:5])}); nothing recorded")
    level_scores = {lv: flat_scores(runs[lv]) for lv in levels[:-1]}
    level_scores[native_level] = a
    platform = runs["native"].get("platform")
    if not isinstance(platform, dict):
        raise HarnessError(f"{work / 'native' / 'scores.json'}: error: no platform fingerprint")
    out = record_scores({**fixture_scores(), **a}, platform, recorded, levels=level_scores)
    console.print(f"recorded {len(a)} quick scores and {len(level_scores)} kernel levels into {recorded}",
                  highlight=False)
    return out
