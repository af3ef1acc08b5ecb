"""A run folder: everything needed to understand and continue one training run.

    <run>/config.yaml        the resolved config (what `load_config(<run>/config.yaml)` reads back)
    <run>/git.txt            `git rev-parse HEAD` of the code that ran (or `unknown`)
    <run>/run.lock           held (fcntl.flock) by the process training in this folder
    <run>/ds_config.json     the DeepSpeed config the engine got
    <run>/metrics.jsonl      one JSON object per epoch, then one `{"event": "final", ...}` record
    <run>/checkpoints/       DeepSpeed checkpoints (the latest epoch's; `--resume` continues from it)
    <run>/best.safetensors   model weights of the best epoch by validation P_VA (or the last, without validation)
    <run>/norm_stats.npz     stage 2: feature normalisation statistics of the training split
    <run>/predictions/       per-video predictions (.npz) and, for the official fold, submission.csv
    <run>/summary.json       the final record, for packaging

Every file is written through `core.atomic`; metrics.jsonl is rewritten whole on each record (it is small)
so that a killed process never leaves half a line; the temporary files of a write cut short by a kill are removed
when the folder is prepared again.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text, remove_stale_temps
from core.errors import HarnessError
from core.locking import FolderLock
from harness.config import Config, config_hash, load_config

LOCK_FILE = "run.lock"
FINAL_EVENT = "final"


class RunError(HarnessError):
    """A run folder that cannot be used as asked (locked, already holding another run, damaged)."""


class RunLockedError(RunError):
    """Another process holds the run folder's lock."""


def git_hash(repo: Path | None = None) -> str:
    """`git rev-parse HEAD` of the code, with `-dirty` when tracked files changed; `unknown` without git.

    Args:
        repo: a folder inside the repository; defaults to this package's folder.
    """
    where = repo or Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty and head else (head or "unknown")


class RunDir:
    """One run folder (see the module docstring for its files).

    Args:
        path: the folder (created on `prepare`).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = FolderLock(self.path / LOCK_FILE, self._locked_error)

    # -- paths --------------------------------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best_weights(self) -> Path:
        return self.path / "best.safetensors"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions"

    def sub(self, name: str) -> RunDir:
        """A run folder nested in this one (stage 1 keeps `mae/` and `finetune/` phases)."""
        return RunDir(self.path / name)

    # -- locking ------------------------------------------------------------------------------------------------
    def lock(self) -> None:
        """Take the folder's lock (non-blocking; idempotent).

        Raises:
            RunLockedError: another process trains in this folder.
        """
        self._lock.acquire()

    def _locked_error(self, lock_path: Path, holder: str) -> RunLockedError:
        return RunLockedError(
            f"{self.path}: another process (pid {holder}) is running in this folder (lock {lock_path}); "
            "wait for it or choose another --out"
        )

    def unlock(self) -> None:
        """Release the lock, if held."""
        self._lock.release()

    @contextlib.contextmanager
    def locked(self) -> Iterator[RunDir]:
        """`with run.locked(): ...` holds the lock for the block."""
        held = self._lock.held
        self.lock()
        try:
            yield self
        finally:
            if not held:
                self.unlock()

    def __del__(self) -> None:
        self.unlock()

    # -- config and provenance ----------------------------------------------------------------------------------
    def saved_config(self) -> Config | None:
        """The config this folder was run with, or None for a new folder."""
        return load_config(self.config_file) if self.config_file.is_file() else None

    def prepare(self, cfg: Config, resume: bool, extra: Mapping[str, Any] | None = None,
                run_hash: str | None = None) -> None:  # fmt: skip
        """Create the folder, or check that an existing one may be continued; write config.yaml and git.txt.

        `resume=False` starts from scratch (checkpoints, metrics, weights and predictions removed, also when the
        folder held a run of another config); `resume=True` continues the folder's run, which must have the same
        config hash.

        Args:
            cfg: the resolved config.
            resume: continue from the folder's checkpoint.
            extra: values hashed along with the config (e.g. the fold), kept in `run.json`.
            run_hash: the hash identifying the run, when it is not `config_hash(cfg, extra)` (stage 1 hashes
                only the settings that change its features).

        Raises:
            RunError: `resume=True` on a folder holding a run of another config.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        self.remove_temp_files()
        want = run_hash or config_hash(cfg, extra)
        have = self.run_hash()
        if resume and have is not None and have != want:
            raise RunError(
                f"{self.path}: cannot resume: the folder holds a run of another config (hash {have[:12]}, now "
                f"{want[:12]}); drop --resume to start it again, or choose another folder"
            )
        if not resume:
            self.reset()
        atomic_write_text(self.config_file, cfg.to_yaml())
        atomic_write_text(self.path / "git.txt", git_hash() + "\n")
        info = {"config_hash": want, "extra": dict(extra or {})}
        atomic_write_text(self.path / "run.json", json.dumps(info, indent=1, sort_keys=True) + "\n")

    def run_hash(self) -> str | None:
        """The hash of the run this folder holds (from run.json), or None."""
        f = self.path / "run.json"
        if not f.is_file():
            return None
        try:
            return json.loads(f.read_text(encoding="utf-8")).get("config_hash")
        except json.JSONDecodeError as exc:
            raise RunError(f"{f}: damaged ({exc}); delete the run folder") from exc

    def remove_temp_files(self) -> int:
        """Delete the temporary files (`.NAME.XXXX.tmp`, see `core.atomic`) a killed run left in this folder
        and in `predictions/`; returns how many.

        Called from `prepare`, i.e. by the process that holds (or is the only one to use) the folder, so no other
        run is writing them. Nested run folders (stage 1's phases) clean their own.
        """
        return remove_stale_temps((self.path, self.predictions))

    def reset(self) -> None:
        """Remove checkpoints, metrics, weights and predictions (a fresh start in the same folder)."""
        import shutil

        for p in (self.checkpoints, self.predictions):
            if p.is_dir():
                shutil.rmtree(p)
        for p in (
            self.metrics_file,
            self.best_weights,
            self.path / "summary.json",
            self.path / "norm_stats.npz",
            self.path / "ds_config.json",
        ):
            p.unlink(missing_ok=True)

    # -- metrics ------------------------------------------------------------------------------------------------
    def read_metrics(self) -> list[dict[str, Any]]:
        """Every record of metrics.jsonl, in order (an empty list when there is none).

        Raises:
            RunError: a line that is not JSON.
        """
        if not self.metrics_file.is_file():
            return []
        out = []
        for i, line in enumerate(self.metrics_file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RunError(f"{self.metrics_file}:{i}: not a JSON line ({exc})") from exc
        return out

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        """Replace metrics.jsonl with `records`."""
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        atomic_write_text(self.metrics_file, text)

    def append_metrics(self, record: Mapping[str, Any]) -> None:
        """Add one record to metrics.jsonl."""
        self.write_metrics([*self.read_metrics(), dict(record)])

    def epoch_records(self) -> list[dict[str, Any]]:
        """The per-epoch records (without the final one)."""
        return [r for r in self.read_metrics() if "epoch" in r and r.get("event") != FINAL_EVENT]

    def truncate_epochs(self, last_epoch: int) -> None:
        """Drop records of epochs after `last_epoch` and any final record (a resumed run redoes them)."""
        keep = [r for r in self.read_metrics() if r.get("event") != FINAL_EVENT and r.get("epoch", -1) <= last_epoch]
        self.write_metrics(keep)

    def final_record(self) -> dict[str, Any] | None:
        """The run's final record, or None when it did not finish."""
        finals = [r for r in self.read_metrics() if r.get("event") == FINAL_EVENT]
        return finals[-1] if finals else None

    def write_final(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Append the final record (replacing an earlier one) and write summary.json."""
        from harness.fingerprint import platform_fingerprint

        rec = {"event": FINAL_EVENT, **record, "platform": platform_fingerprint()}
        self.write_metrics([r for r in self.read_metrics() if r.get("event") != FINAL_EVENT] + [rec])
        self.write_json("summary.json", rec)
        return rec

    def finished_with(self, cfg: Config, extra: Mapping[str, Any] | None = None,
                      run_hash: str | None = None) -> dict[str, Any] | None:  # fmt: skip
        """The final record when the folder finished a run of this config (same hash), else None."""
        rec = self.final_record()
        if rec is not None and rec.get("config_hash") == (run_hash or config_hash(cfg, extra)):
            return rec
        return None

    # -- misc ---------------------------------------------------------------------------------------------------
    def write_json(self, name: str, obj: Any) -> Path:
        """Write `<run>/<name>` as indented JSON."""
        return atomic_write_text(self.path / name, json.dumps(obj, indent=1, sort_keys=True) + "\n")
