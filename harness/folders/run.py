"""A run folder: everything needed to understand and continue one training run.

    <run>/config.yaml        the resolved config (what `load_config(<run>/config.yaml)` reads back)
    <run>/git.txt            `git rev-parse HEAD` of the code that ran (or `unknown`)
    <run>/run.json           the hash identifying the run (config and e.g. the fold), checked by `--resume`
    <run>/run.lock           held (fcntl.flock) by the process training in this folder
    <run>/ds_config.json     the DeepSpeed config the engine got
    <run>/metrics.jsonl      one JSON object per epoch, then one `{"event": "final", ...}` record
    <run>/tb/                TensorBoard events, a view of metrics.jsonl (`harness.runtime.tb_events`)
    <run>/checkpoints/       DeepSpeed checkpoints (the latest epoch's; `--resume` continues from it)
    <run>/best.safetensors   model weights of the best epoch by validation P_VA (or the last, without validation)
    <run>/norm_stats.npz     stage 2: feature normalisation statistics of the training split
    <run>/predictions/       per-video predictions (validation.npz, test.npz) and, for the official fold,
                             submission.csv
    <run>/summary.json       the final record, for packaging
    <run>/bootstrap.json     the video-bootstrap interval of the reported split (`harness.experiments.folds`)
    <run>/stage1/            `harness train`: the stage-1 run folder, with its phases mae/ and finetune/, and
                             encoder.safetensors (the encoder before fine-tuning) where `visual_mae` was extracted

`RunDir` names each of these (a property per file and folder); the module-level constants it builds them from
serve code that holds a folder path and no `RunDir`.

Every file is written through `core.atomic`; metrics.jsonl is rewritten whole on each record (it is small)
so that a killed process never leaves half a line; the temporary files of a write cut short by a kill are removed
when the folder is prepared again.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text, remove_stale_temps
from core.errors import HarnessError
from core.locking import FolderLock
from core.ownership import Ownership, claim_folder
from core.safe_read import iter_json_lines, read_json, type_name
from harness.config import Config, config_hash, load_config
from harness.runtime.fingerprint import platform_fingerprint
from harness.runtime.tb_events import TB_DIR
from submissions.limits import MAX_MANIFEST_BYTES, read_text_bounded

CONFIG_FILE = "config.yaml"
GIT_FILE = "git.txt"
RUN_FILE = "run.json"
LOCK_FILE = "run.lock"
DS_CONFIG_FILE = "ds_config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
BEST_WEIGHTS_FILE = "best.safetensors"
NORM_STATS_FILE = "norm_stats.npz"
PREDICTIONS_DIR = "predictions"
SUBMISSION_FILE = "submission.csv"
"""The test split's ABAW submission file, inside `PREDICTIONS_DIR`."""
PREDICTION_SPLITS = ("validation", "test")
"""The splits whose predictions a run keeps as `PREDICTIONS_DIR/<split>.npz`."""
SUMMARY_FILE = "summary.json"
BOOTSTRAP_FILE = "bootstrap.json"
ENCODER_FILE = "encoder.safetensors"
"""Stage 1's encoder before fine-tuning (the ViT's layout, head seeded), in the stage-1 folder when its `visual_mae`
features were extracted: what `harness predict` encodes with for a run that reads them."""
STAGE1_DIR = "stage1"
"""The stage-1 run folder inside a `harness train` output folder or an experiment folder."""
MAE_DIR = "mae"
FINETUNE_DIR = "finetune"
"""Stage 1's two phases, each a run folder nested in the stage-1 one."""

RUN_LAYOUT = (CONFIG_FILE, GIT_FILE, RUN_FILE, LOCK_FILE, DS_CONFIG_FILE, METRICS_FILE, TB_DIR, CHECKPOINTS_DIR,
              BEST_WEIGHTS_FILE, NORM_STATS_FILE, PREDICTIONS_DIR, SUMMARY_FILE, BOOTSTRAP_FILE, STAGE1_DIR, MAE_DIR,
              FINETUNE_DIR, ENCODER_FILE)  # fmt: skip
"""Every entry a run folder may hold: what `RunDir` claims in the folder's ownership record (`core.ownership`)."""
RESET_ENTRIES = (CHECKPOINTS_DIR, PREDICTIONS_DIR, METRICS_FILE, BEST_WEIGHTS_FILE, SUMMARY_FILE, NORM_STATS_FILE,
                 DS_CONFIG_FILE)  # fmt: skip
"""What a fresh start in a used run folder removes (when the folder's record holds them)."""

VIDEO_WORK_DIR = "work"
"""The intermediate features of `harness predict VIDEO --out DIR`, inside DIR (beside `<video>.csv` and `.png`)."""

FINAL_EVENT = "final"
ENCODER_KEY = "encoder_weights"
"""The final record's field holding the stage-1 encoder weights behind a stage-2 run's visual features."""


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
        self._lock = FolderLock(self.lock_file, self._locked_error)
        self._owned: Ownership | None = None

    # -- paths --------------------------------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def git_file(self) -> Path:
        return self.path / GIT_FILE

    @property
    def run_file(self) -> Path:
        return self.path / RUN_FILE

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def ds_config_file(self) -> Path:
        return self.path / DS_CONFIG_FILE

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def tb_dir(self) -> Path:
        return self.path / TB_DIR

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def best_weights(self) -> Path:
        return self.path / BEST_WEIGHTS_FILE

    @property
    def norm_stats_file(self) -> Path:
        return self.path / NORM_STATS_FILE

    @property
    def predictions(self) -> Path:
        return self.path / PREDICTIONS_DIR

    def split_predictions(self, split: str) -> Path:
        """The per-video predictions of one split (`validation` or `test`, see `PREDICTION_SPLITS`).

        Raises:
            ValueError: another split name (a typo would name a file nothing writes).
        """
        if split not in PREDICTION_SPLITS:
            raise ValueError(f"no predictions of split {split!r}; a run keeps {', '.join(PREDICTION_SPLITS)}")
        return self.predictions / f"{split}.npz"

    @property
    def validation_predictions(self) -> Path:
        return self.split_predictions("validation")

    @property
    def test_predictions(self) -> Path:
        return self.split_predictions("test")

    @property
    def submission_file(self) -> Path:
        return self.predictions / SUBMISSION_FILE

    @property
    def summary_file(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def bootstrap_file(self) -> Path:
        return self.path / BOOTSTRAP_FILE

    def sub(self, name: str) -> RunDir:
        """A run folder nested in this one (stage 1 keeps `mae/` and `finetune/` phases)."""
        return RunDir(self.path / name)

    @property
    def stage1(self) -> RunDir:
        """The stage-1 run folder `harness train` keeps in its output folder."""
        return self.sub(STAGE1_DIR)

    @property
    def mae(self) -> RunDir:
        """Stage 1's MAE pre-training phase (of a stage-1 run folder)."""
        return self.sub(MAE_DIR)

    @property
    def encoder_weights(self) -> Path:
        """Stage 1's encoder before fine-tuning (of a stage-1 run folder; `ENCODER_FILE`)."""
        return self.path / ENCODER_FILE

    def encoder_that_made(self, finetuned: bool) -> Path:
        """The encoder weights (of a stage-1 run folder) behind its fine-tuned features, or behind those before
        fine-tuning."""
        return self.finetune.best_weights if finetuned else self.encoder_weights

    @property
    def finetune(self) -> RunDir:
        """Stage 1's fine-tuning phase (of a stage-1 run folder); its `best_weights` are the encoder."""
        return self.sub(FINETUNE_DIR)

    # -- ownership and locking ----------------------------------------------------------------------------------
    def claim(self, force: bool = False, warn: Callable[[str], None] | None = None) -> Ownership:
        """Claim the folder for a run (`core.ownership.claim_folder` with `RUN_LAYOUT`; idempotent).

        Args:
            force: write into a non-empty folder the harness did not write, beside what it holds.
            warn: called with the warning naming what `force` leaves untouched.

        Raises:
            OwnershipError: a non-empty folder without the harness's record (without `force`), or one holding a
                file of the run layout that the harness did not write.
        """
        if self._owned is None:
            self._owned = claim_folder(self.path, RUN_LAYOUT, what="run folder", force=force, warn=warn)
        return self._owned

    def lock(self) -> None:
        """Claim the folder (see `claim`), then take its lock (non-blocking; idempotent).

        Raises:
            RunLockedError: another process trains in this folder.
            OwnershipError: the folder is not one the harness wrote (see `claim`).
        """
        self.claim()
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
        self.claim()
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
        atomic_write_text(self.git_file, git_hash() + "\n")
        info = {"config_hash": want, "extra": dict(extra or {})}
        atomic_write_text(self.run_file, json.dumps(info, indent=1, sort_keys=True) + "\n")

    def run_hash(self) -> str | None:
        """The hash of the run this folder holds (from run.json), or None."""
        f = self.run_file
        if not f.is_file():
            return None
        found = read_json(f, "run record").get("config_hash")
        if found is not None and not isinstance(found, str):
            raise RunError(f"{f}: damaged: config_hash is {type_name(found)}, not a string; delete the run folder")
        return found

    def remove_temp_files(self) -> int:
        """Delete the temporary files (`.NAME.XXXX.tmp`, see `core.atomic`) a killed run left in this folder
        and in `predictions/`; returns how many.

        Called from `prepare`, i.e. by the process that holds (or is the only one to use) the folder, so no other
        run is writing them. Nested run folders (stage 1's phases) clean their own.
        """
        return remove_stale_temps((self.path, self.predictions))

    def reset(self) -> None:
        """Remove checkpoints, metrics, weights and predictions (a fresh start in the same folder): only entries
        the folder's ownership record holds (`RESET_ENTRIES`), never a file by its name alone."""
        self.claim().remove(*RESET_ENTRIES)

    # -- metrics ------------------------------------------------------------------------------------------------
    def read_metrics(self) -> list[dict[str, Any]]:
        """Every record of metrics.jsonl, in order (an empty list when there is none).

        Raises:
            ReadError: a line that is not a JSON object, or a file that is not a bounded regular file.
        """
        if not self.metrics_file.is_file():
            return []
        return [rec for _line, rec in iter_json_lines(self.metrics_file, "metrics file")]

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
        rec = {"event": FINAL_EVENT, **record, "platform": platform_fingerprint()}
        self.write_metrics([r for r in self.read_metrics() if r.get("event") != FINAL_EVENT] + [rec])
        self.write_json(SUMMARY_FILE, rec)
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
        """Write `<run>/<name>` as indented JSON.

        Args:
            name: one of the module's file names (`SUMMARY_FILE`, `DS_CONFIG_FILE`, ...).
            obj: what to write.
        """
        return atomic_write_text(self.path / name, json.dumps(obj, indent=1, sort_keys=True) + "\n")

    def metadata(self) -> dict[str, Any]:
        """What the folder says about itself, for a submission package's manifest: its name (`run`), the final
        record (`summary`), the resolved config (`config_yaml`) and the git hash (`git_hash`), whichever exist.

        Every file is read bounded (a package manifest's limit), so a huge or special file cannot stall packaging.

        Raises:
            HarnessError: summary.json is not JSON, or a file is unreadable or too large (naming the file).
        """
        meta: dict[str, Any] = {"run": self.path.name}
        if self.summary_file.is_file():
            meta["summary"] = read_json(self.summary_file, "run summary", max_bytes=MAX_MANIFEST_BYTES)
        if self.config_file.is_file():
            meta["config_yaml"] = read_text_bounded(self.config_file, "run config", MAX_MANIFEST_BYTES)
        if self.git_file.is_file():
            meta["git_hash"] = read_text_bounded(self.git_file, "git hash file", 4096).strip()
        return meta


def resolve_prediction(run_or_pred: str | Path) -> tuple[Path, RunDir | None]:
    """The prediction file to package and its run folder: a run folder's test-set submission file, or a prediction
    file given as it is (no run then).

    Args:
        run_or_pred: a run folder or a prediction file.

    Raises:
        HarnessError: a run folder without a submission file, or neither a file nor a folder.
    """
    p = Path(run_or_pred)
    if p.is_dir():
        run = RunDir(p)
        if not run.submission_file.is_file():
            where = Path(PREDICTIONS_DIR) / SUBMISSION_FILE
            raise HarnessError(f"{p}: no {where} in this run folder; run `harness predict` first")
        return run.submission_file, run
    if not p.is_file():
        raise HarnessError(f"{p}: no such prediction file or run folder")
    return p, None
