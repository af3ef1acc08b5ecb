"""Package a validated submission as a zip with a manifest; extract zips safely.

The package holds the prediction file and `manifest.json`: the run's config and git hash, model and config names,
per-fold validation scores, and the SHA-256 of every file. An invalid prediction file is refused.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from submissions.atomic import atomic_open
from submissions.errors import FormatError, HarnessError
from submissions.formats import validate_submission

PREDICTION_NAME = "predictions.csv"
MANIFEST_NAME = "manifest.json"
RUN_PREDICTION = Path("predictions") / "submission.csv"
"""Where a run folder keeps its test-set submission file."""


class UnsafeArchiveError(HarnessError):
    """A zip member would land outside the target folder, is absolute, or is a link."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run_metadata(run_dir: Path) -> dict:
    """What a run folder says about itself: config, git hash, model and per-fold scores (whatever is present)."""
    meta: dict = {"run": run_dir.name}
    summary = run_dir / "summary.json"
    if summary.is_file():
        meta["summary"] = json.loads(summary.read_text())
    cfg = run_dir / "config.yaml"
    if cfg.is_file():
        meta["config_yaml"] = cfg.read_text()
    git = run_dir / "git.txt"
    if git.is_file():
        meta["git_hash"] = git.read_text().strip()
    return meta


@dataclass(frozen=True)
class Package:
    """A written submission package.

    Args:
        path: the zip file.
        manifest: the manifest stored inside.
    """

    path: Path
    manifest: dict


def resolve_prediction(run_or_pred: str | Path) -> tuple[Path, Path | None]:
    """(prediction file, run folder or None) for a run folder or a prediction file."""
    p = Path(run_or_pred)
    if p.is_dir():
        pred = p / RUN_PREDICTION
        if not pred.is_file():
            raise HarnessError(f"{p}: no {RUN_PREDICTION} in this run folder; run `harness predict` first")
        return pred, p
    if not p.is_file():
        raise HarnessError(f"{p}: no such prediction file or run folder")
    return p, None


def package_submission(
    run_or_pred: str | Path,
    sample: str | Path,
    out_zip: str | Path,
    extra: dict | None = None,
) -> Package:
    """Validate a prediction file against the sample file, then write the submission zip atomically.

    Args:
        run_or_pred: a run folder (its `predictions/submission.csv` is used) or a prediction file.
        sample: the organisers' sample file (the frame list of the test set).
        out_zip: the zip to write.
        extra: more manifest fields (e.g. the command line).

    Raises:
        FormatError: the prediction file is invalid (nothing is written).
    """
    pred, run_dir = resolve_prediction(run_or_pred)
    problems = validate_submission(pred, sample)
    if problems:
        raise FormatError(problems)
    manifest: dict = {
        "format": "ABAW VA single-file submission (image_location,valence,arousal)",
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "prediction_file": PREDICTION_NAME,
        "source": str(pred),
        "sample_file": Path(sample).name,
        "sample_sha256": sha256_file(sample),
        "files": {PREDICTION_NAME: sha256_file(pred)},
    }
    if run_dir is not None:
        manifest.update(run_metadata(run_dir))
    if extra:
        manifest.update(extra)
    with atomic_open(out_zip, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(pred, PREDICTION_NAME)
        zf.writestr(MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True))
    return Package(path=Path(out_zip), manifest=manifest)


def _check_member(info: zipfile.ZipInfo, zip_path: Path) -> PurePosixPath:
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeArchiveError(f"{zip_path}: member {name!r} is a symbolic link; refusing to extract")
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or (p.parts and p.parts[0].endswith(":")):
        raise UnsafeArchiveError(f"{zip_path}: member {name!r} has an absolute path; refusing to extract")
    if ".." in p.parts:
        raise UnsafeArchiveError(f"{zip_path}: member {name!r} climbs out of the target folder; refusing to extract")
    return p


def safe_extract(zip_path: str | Path, dest: str | Path) -> list[Path]:
    """Extract a zip into `dest`, refusing (before writing anything) absolute paths, `..` and links."""
    zip_path, dest = Path(zip_path), Path(dest)
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise HarnessError(f"{zip_path}: not a valid zip archive ({exc})") from exc
    with zf:
        members = [(info, _check_member(info, zip_path)) for info in zf.infolist()]
        out = []
        root = dest.resolve()
        for info, rel in members:
            target = (dest / Path(*rel.parts)).resolve()
            if root not in target.parents and target != root:
                raise UnsafeArchiveError(f"{zip_path}: member {info.filename!r} resolves outside {dest}")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            with zf.open(info) as src, atomic_open(target, "wb") as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    dst.write(chunk)
            out.append(target)
    return out


def verify_package(zip_path: str | Path, sample: str | Path, workdir: str | Path) -> dict:
    """Unzip a package into `workdir`, check the checksums and re-validate the prediction file; return the manifest."""
    files = safe_extract(zip_path, workdir)
    names = {f.name: f for f in files}
    if MANIFEST_NAME not in names or PREDICTION_NAME not in names:
        raise HarnessError(f"{zip_path}: a package needs {PREDICTION_NAME} and {MANIFEST_NAME}")
    manifest = json.loads(names[MANIFEST_NAME].read_text())
    for name, digest in manifest.get("files", {}).items():
        if sha256_file(names[name]) != digest:
            raise HarnessError(f"{zip_path}: checksum mismatch for {name}")
    problems = validate_submission(names[PREDICTION_NAME], sample)
    if problems:
        raise FormatError(problems)
    return manifest
