"""Package a validated submission as a zip with a manifest; extract zips safely.

The package holds the prediction file and `manifest.json`: the SHA-256 of every file and the metadata the caller
gives (the harness passes what the run folder says about itself: its config, git hash and final record with the
per-fold scores). This module reads no run folder and knows nothing of its layout. An invalid prediction file is
refused.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any
from zlib import error as zlib_error

from core.atomic import atomic_open, remove_temps_of
from core.errors import HarnessError
from core.hashing import sha256_file
from core.safe_read import ReadError, human_bytes, parse_json
from submissions.errors import FormatError, Problem
from submissions.formats import validate_submission
from submissions.limits import (
    MAX_MANIFEST_BYTES,
    MAX_ZIP_MEMBER_BYTES,
    MAX_ZIP_MEMBERS,
    MAX_ZIP_RATIO,
    MAX_ZIP_TOTAL_BYTES,
    ZIP_RATIO_FLOOR,
    InputRefusedError,
    check_regular_file,
    read_text_bounded,
    shorten,
)

PREDICTION_NAME = "predictions.csv"
MANIFEST_NAME = "manifest.json"


class UnsafeArchiveError(HarnessError):
    """A zip member would land outside the target folder, is absolute, or is a link."""


@dataclass(frozen=True)
class Package:
    """A written submission package.

    Args:
        path: the zip file.
        manifest: the manifest stored inside.
    """

    path: Path
    manifest: dict


def package_submission(
    prediction: str | Path,
    sample: str | Path,
    out_zip: str | Path,
    metadata: Mapping[str, Any] | None = None,
    force: bool = False,
) -> Package:
    """Validate a prediction file against the sample file, then write the submission zip atomically.

    Args:
        prediction: the prediction file (ABAW single-file submission).
        sample: the organisers' sample file (the frame list of the test set).
        out_zip: the zip to write.
        metadata: more manifest fields, merged last: e.g. what the run says about itself
            (`harness.folders.run.RunDir.metadata`) and the command line.
        force: replace an existing `out_zip` that is not a previous package.

    Raises:
        FormatError: the prediction file is invalid (nothing is written).
        HarnessError: `out_zip` does not end in .zip, or is a file this command did not write (without `force`),
            or `prediction` is a folder.
    """
    check_package_target(out_zip, force)
    pred = Path(prediction)
    if pred.is_dir():
        # A run folder's layout is the harness's: it passes the folder's submission file.
        raise HarnessError(f"{pred}: is a folder; give the prediction file to package")
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
    if metadata:
        manifest.update(metadata)
    with atomic_open(out_zip, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(pred, PREDICTION_NAME)
        zf.writestr(MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True))
    return Package(path=Path(out_zip), manifest=manifest)


def _check_member(info: zipfile.ZipInfo, zip_path: Path) -> PurePosixPath:
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeArchiveError(f"{zip_path}: member {shorten(name)!r} is a symbolic link; refusing to extract")
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or (p.parts and p.parts[0].endswith(":")):
        raise UnsafeArchiveError(f"{zip_path}: member {shorten(name)!r} has an absolute path; refusing to extract")
    if ".." in p.parts:
        raise UnsafeArchiveError(
            f"{zip_path}: member {shorten(name)!r} climbs out of the target folder; refusing to extract"
        )
    if info.flag_bits & 0x1:
        raise UnsafeArchiveError(f"{zip_path}: member {shorten(name)!r} is encrypted; refusing to extract")
    if info.file_size > MAX_ZIP_MEMBER_BYTES:
        raise UnsafeArchiveError(
            f"{zip_path}: member {shorten(name)!r} inflates to {human_bytes(info.file_size)}, more than the "
            f"{human_bytes(MAX_ZIP_MEMBER_BYTES)} a package member may hold; refusing to extract"
        )
    if info.file_size > ZIP_RATIO_FLOOR and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
        raise UnsafeArchiveError(
            f"{zip_path}: member {shorten(name)!r} inflates {info.file_size / max(info.compress_size, 1):.0f} times "
            f"(at most {MAX_ZIP_RATIO:.0f}): a zip bomb; refusing to extract"
        )
    return p


def open_archive(zip_path: str | Path) -> zipfile.ZipFile:
    """Open a zip for reading after checking it is a bounded regular file (not a FIFO, a device or a folder).

    Raises:
        HarnessError: not a regular file, too large, or not a zip archive.
    """
    zip_path = Path(zip_path)
    check_regular_file(zip_path, "zip archive", MAX_ZIP_TOTAL_BYTES)
    try:
        return zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise HarnessError(f"{zip_path}: not a valid zip archive ({exc})") from exc


def check_archive(zf: zipfile.ZipFile, zip_path: Path) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Check every member from the zip's headers before anything is extracted; return (member, relative path).

    Refused: more than `MAX_ZIP_MEMBERS` members, a name given twice, links, absolute or climbing paths,
    encrypted members, a member or a total above the size bounds, a compression ratio of a zip bomb.

    Raises:
        UnsafeArchiveError: naming the zip and the member.
    """
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise UnsafeArchiveError(
            f"{zip_path}: {len(infos)} members, more than the {MAX_ZIP_MEMBERS} a package may hold; refusing to extract"
        )
    members, seen = [], set()
    for info in infos:
        rel = _check_member(info, zip_path)
        key = rel.as_posix().rstrip("/")
        if key in seen:
            raise UnsafeArchiveError(f"{zip_path}: member {shorten(info.filename)!r} appears twice; refusing to "
                                     "extract")  # fmt: skip
        seen.add(key)
        members.append((info, rel))
    total = sum(info.file_size for info in infos)
    if total > MAX_ZIP_TOTAL_BYTES:
        raise UnsafeArchiveError(
            f"{zip_path}: members inflate to {human_bytes(total)} in all, more than "
            f"{human_bytes(MAX_ZIP_TOTAL_BYTES)}; refusing to extract"
        )
    return members


def _copy_bounded(src: IO[bytes], dst: IO[bytes], limit: int, zip_path: Path, name: str) -> int:
    """Copy at most `limit` bytes (the header's size): a member that inflates past what its header says is refused."""
    written = 0
    for chunk in iter(lambda: src.read(1 << 20), b""):
        written += len(chunk)
        if written > limit:
            raise UnsafeArchiveError(f"{zip_path}: member {shorten(name)!r} inflates past the size its header gives; "
                                     "refusing it")  # fmt: skip
        dst.write(chunk)
    return written


def safe_extract(zip_path: str | Path, dest: str | Path) -> list[Path]:
    """Extract a zip into `dest`, refusing (before writing anything) absolute paths, `..`, links and zip bombs.

    Sizes, counts and ratios are checked from the zip's headers first (`check_archive`), then enforced while
    streaming, so a header that lies cannot inflate a member past its stated size.

    Args:
        zip_path: the archive.
        dest: the folder to extract into (created).

    Returns:
        The extracted files.

    Raises:
        UnsafeArchiveError: an unsafe or oversized member.
        HarnessError: not a readable zip archive.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    with open_archive(zip_path) as zf:
        members = check_archive(zf, zip_path)
        out = []
        root = dest.resolve()
        for info, rel in members:
            target = (dest / Path(*rel.parts)).resolve()
            if root not in target.parents and target != root:
                raise UnsafeArchiveError(f"{zip_path}: member {shorten(info.filename)!r} resolves outside {dest}")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            try:
                with zf.open(info) as src, atomic_open(target, "wb") as dst:
                    _copy_bounded(src, dst, info.file_size, zip_path, info.filename)
            except (zipfile.BadZipFile, EOFError, zlib_error, NotImplementedError) as exc:
                raise HarnessError(f"{zip_path}: member {shorten(info.filename)!r} is damaged ({exc})") from exc
            out.append(target)
    return out


def is_zip_file(path: str | Path) -> bool:
    """Whether `path` is a regular file that starts like a zip archive (read 4 bytes; a FIFO is never opened)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    try:
        with open(path, "rb") as fh:
            return fh.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
    except OSError:
        return False


def inspect_package(zip_path: str | Path, sample: str | Path | None, workdir: str | Path) -> tuple[dict, list[Problem]]:
    """Check a submission package: safe extraction, manifest, checksums, then the prediction file (against the sample).

    Args:
        zip_path: the package.
        sample: the organisers' sample file; None checks the prediction file's own structure only.
        workdir: where to extract it.

    Returns:
        (manifest, problems of the prediction file); an empty list means the package is valid.

    Raises:
        HarnessError: the archive is unsafe or damaged, the manifest is missing or unreadable, a checksum differs,
            or a member is not covered by the manifest.
    """
    zip_path = Path(zip_path)
    with open_archive(zip_path) as zf:
        members = {rel.as_posix().rstrip("/") for _info, rel in check_archive(zf, zip_path)}
    files = safe_extract(zip_path, workdir)
    names = {f.relative_to(Path(workdir).resolve()).as_posix(): f for f in files}
    if MANIFEST_NAME not in names or PREDICTION_NAME not in names:
        raise HarnessError(f"{zip_path}: a package needs {PREDICTION_NAME} and {MANIFEST_NAME} at its top level")
    shown = member_name(zip_path, MANIFEST_NAME)
    text = read_text_bounded(names[MANIFEST_NAME], "package manifest", MAX_MANIFEST_BYTES, shown=shown)
    try:
        manifest = parse_json(text, shown, "package manifest")
    except ReadError as exc:
        raise InputRefusedError(exc.path, exc.reason, exc.line, exc.code) from None
    listed = manifest.get("files")
    if not isinstance(listed, dict) or not all(isinstance(v, str) for v in listed.values()):
        raise HarnessError(f"{shown}: has no `files` mapping of names to SHA-256 checksums")
    # Every member, folders included, must be the manifest or a file its checksums cover.
    for name in sorted(members - set(listed) - {MANIFEST_NAME}):
        raise HarnessError(f"{zip_path}: member {shorten(name)!r} is not covered by the manifest's checksums")
    for name, digest in listed.items():
        if name not in names:
            raise HarnessError(f"{zip_path}: the manifest lists {shorten(str(name))!r}, which the package lacks")
        if sha256_file(names[name]) != digest:
            raise HarnessError(f"{zip_path}: checksum mismatch for {name}")
    return manifest, validate_submission(names[PREDICTION_NAME], sample, shown=member_name(zip_path, PREDICTION_NAME))


def member_name(zip_path: str | Path, member: str) -> str:
    """How messages name a member of a zip: `PKG.zip!predictions.csv` (never the temporary file it was extracted to).

    >>> member_name("out/team.zip", "predictions.csv")
    'out/team.zip!predictions.csv'
    """
    return f"{zip_path}!{member}"


def verify_package(zip_path: str | Path, sample: str | Path, workdir: str | Path) -> dict:
    """Unzip a package into `workdir`, check the checksums and re-validate the prediction file; return the manifest.

    Raises:
        FormatError: the prediction file is invalid.
        HarnessError: see `inspect_package`.
    """
    manifest, problems = inspect_package(zip_path, sample, workdir)
    if problems:
        raise FormatError(problems)
    return manifest


def is_package(path: str | Path) -> bool:
    """Whether `path` is a zip holding a harness manifest (a previous `harness submit` output)."""
    if not is_zip_file(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(MANIFEST_NAME)
            if info.file_size > MAX_MANIFEST_BYTES:
                return False
            manifest = parse_json(zf.read(info).decode("utf-8"), path, "package manifest")
    except (KeyError, zipfile.BadZipFile, OSError, ValueError, zlib_error, ReadError):
        return False
    return isinstance(manifest, dict) and str(manifest.get("format", "")).startswith("ABAW VA")


def check_package_target(out_zip: str | Path, force: bool = False) -> Path:
    """Refuse an `--out` the package may not be written to: not a `.zip`, a folder, or a file it did not write.

    Args:
        out_zip: the zip to write.
        force: replace an existing file that is not a previous package.

    Raises:
        HarnessError: naming the path and what to do.
    """
    out = Path(out_zip)
    if out.suffix.lower() != ".zip":
        raise HarnessError(f"{out}: a submission package is a .zip file; give an --out that ends in .zip")
    if out.is_symlink() or out.exists():
        if out.is_dir():
            raise HarnessError(f"{out}: is a folder; give the path of the .zip file to write")
        if not out.is_file():
            raise HarnessError(f"{out}: exists and is not a regular file; refusing to replace it")
        if not force and not is_package(out):
            raise HarnessError(f"{out}: exists and is not a submission package this command wrote; refusing to "
                               "replace it (pass --force to replace it)")  # fmt: skip
    # A killed earlier write left its temporary file (`.NAME.XXXXXXXX.tmp`, core.atomic) beside the target.
    remove_temps_of(out)
    return out
