"""The hostile-input corpus: every case is built at run time under a temporary folder (nothing large is committed).

Each `Case` is one `harness ...` command line run as a subprocess (`python -m harness.cli`), with the exit codes
it may end with and a text its error lines must contain. `run_case` measures its peak RSS (`os.wait4`'s rusage of
that one child) and wall time. `python -m tests.security.hostile` runs the whole corpus and prints a table (the
figures docs/guarantees.md quotes).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import resource
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCATED = re.compile(r"^\S.*?(:\d+)?: error: \S")
"""A located error line: `path[:line]: error: message`."""


@dataclass(frozen=True)
class Outcome:
    """What one subprocess did.

    Args:
        rc: exit code (negative: killed by that signal; 124: timed out).
        stdout: its standard output.
        stderr: its standard error.
        rss_mb: peak resident memory in MiB.
        seconds: wall time.
    """

    rc: int
    stdout: str
    stderr: str
    rss_mb: float
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        """The lines of stderr that report an error (DeepSpeed's own log lines are not errors)."""
        return [ln for ln in self.stderr.splitlines() if ": error: " in ln or ln.startswith("error")]


LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "harness.cli", *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""Forks the command from a small interpreter: Linux counts the pages a child inherits at fork in its peak RSS, so a
child forked straight from a test process that holds torch would report the test's memory, not its own."""


def run_case(argv: list[str], timeout: float = 120.0, cwd: Path = REPO) -> Outcome:
    """Run `python -m harness.cli ARGV` and measure it (peak RSS of that process alone, from `os.wait4`).

    Args:
        argv: the harness arguments.
        timeout: seconds before the process is killed (the outcome then has rc 124).
        cwd: working folder.
    """
    out_path = Path(tempfile.gettempdir()) / f"hostile-{os.getpid()}-{time.monotonic_ns()}"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["COLUMNS"] = "80"  # where rich used to wrap messages
    env.setdefault("PYTHONPATH", str(REPO))
    rss_file = Path(f"{out_path}.rss")
    with open(f"{out_path}.out", "wb") as fo, open(f"{out_path}.err", "wb") as fe:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(rss_file), *argv], cwd=cwd, stdout=fo,
                                stderr=fe, env=env, stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the command it forked
            proc.wait()
        seconds = time.monotonic() - t0
    text = [Path(f"{out_path}.{s}").read_text(errors="replace") for s in ("out", "err")]
    rss_kb = float(rss_file.read_text() or 0) if rss_file.is_file() else float("nan")
    for s in ("out", "err", "rss"):
        Path(f"{out_path}.{s}").unlink(missing_ok=True)
    rc = 124 if timed_out else proc.returncode
    return Outcome(rc, text[0], text[1], rss_kb / 1024, seconds)


@dataclass
class Case:
    """One hostile input and the command that meets it.

    Args:
        name: short id.
        argv: the harness arguments.
        rcs: exit codes that count as a clean answer (2: refused; 1: validate/doctor listed problems; 0: handled).
        expect: a text the error lines (or stdout for rc 0/1) must contain.
        check: more assertions after the run (files untouched, no sentinel), raising AssertionError.
        timeout: seconds allowed.
    """

    name: str
    argv: list[str]
    rcs: tuple[int, ...] = (2,)
    expect: str = ""
    check: Callable[[], None] | None = None
    timeout: float = 60.0
    extra: dict = field(default_factory=dict)


def judge(case: Case, out: Outcome) -> list[str]:
    """Every way `out` falls short of a clean answer to `case` (empty: refused or handled cleanly)."""
    faults = []
    if out.rc not in case.rcs:
        faults.append(f"exit code {out.rc}, expected {case.rcs}")
    if "Traceback" in out.stderr or "Traceback" in out.stdout:
        faults.append("printed a traceback")
    if out.rc == 2:
        lines = out.error_lines
        if not lines:
            faults.append("no error line on stderr")
        bad = [ln for ln in lines if not LOCATED.match(ln)]
        if bad:
            faults.append(f"error lines not of the form 'path[:line]: error: message': {bad[:2]}")
        if len(lines) > 20:
            faults.append(f"{len(lines)} error lines")
        if case.expect and case.expect not in out.stderr:
            faults.append(f"stderr lacks {case.expect!r}")
    elif case.expect and case.expect not in out.stdout + out.stderr:
        faults.append(f"output lacks {case.expect!r}")
    if case.check is not None:
        try:
            case.check()
        except AssertionError as exc:
            faults.append(f"check failed: {exc}")
    return faults


# ---------------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------------


class Payload:
    """A pickle whose loading would run `touch SENTINEL` (what a hostile checkpoint does)."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.sentinel}",))


def write_payload_pickle(path: Path, sentinel: Path) -> Path:
    """A file that runs the payload when unpickled (also what `torch.load(weights_only=False)` would do)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump({"module": Payload(sentinel), "epoch": 5}, fh)
    return path


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """YAML whose aliases of aliases expand to width**levels scalars (9 x 9: 387 million)."""
    lines = ["a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def make_fifo(path: Path) -> Path:
    """A named pipe nobody writes to: reading it blocks forever."""
    os.mkfifo(path)
    return path


def write_zip(path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    """A zip with the given members (names as given, so `../x` and `/x` stay); `links` are symlink members."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in links:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, data)
    return path


def zip_bomb(path: Path, name: str, size: int) -> Path:
    """A zip whose member `name` inflates to `size` bytes of one repeated character (streamed, never in memory)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf, \
            zf.open(_deflated(name), "w", force_zip64=True) as fh:  # fmt: skip
        block = b"0" * (1 << 20)
        for _ in range(size // len(block)):
            fh.write(block)
    return path


def _deflated(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED  # ZipInfo's default is stored: no bomb at all
    return info


def package_with(path: Path, predictions: bytes, manifest: dict | bytes | None = None,
                 more: dict[str, bytes] | None = None) -> Path:  # fmt: skip
    """A package-shaped zip: predictions.csv, a manifest (with the right checksum unless given), more members."""
    import hashlib

    if manifest is None:
        manifest = {"format": "ABAW VA single-file submission", "files": {
            "predictions.csv": hashlib.sha256(predictions).hexdigest()}}  # fmt: skip
    body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    return write_zip(path, {"predictions.csv": predictions, "manifest.json": body, **(more or {})})


def peak_rss_children_mb() -> float:
    """Peak RSS of the largest child this process has waited for (a cross-check of `Outcome.rss_mb`)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def run_all(cases: list[Case]) -> dict[str, tuple[Case, Outcome]]:
    """Every case through `run_case`, two at a time (the machine's two cores), by name with its outcome."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda c: run_case(c.argv, timeout=c.timeout), cases))
    return {c.name: (c, o) for c, o in zip(cases, outcomes, strict=True)}
