"""The harness's record of what it writes in a folder: a folder is reused, overwritten or cleaned only by that record.

A command that writes an output folder (a run folder, a corpus, a preprocess output root) first claims it with
`claim_folder`, naming the entries (files and sub-folders, one level deep) it writes there. The claim is kept in
`<folder>/.harness-owned.json`, written atomically:

    {"version": 1, "what": "run folder", "entries": {"config.yaml": {"kind": "file", "size": 812,
     "mtime_ns": 1733551234000000000}, "checkpoints": {"kind": "dir", "size": 0, "mtime_ns": ...}, ...}}

Each entry holds its kind, size and modification time as last seen by the harness (`Ownership.note` refreshes
them after a write). Whether the harness may remove or overwrite an entry is decided by the record alone, never by
the entry's name: a project folder that happens to hold `config.yaml` and `predictions/` is not a run folder.

- A new or empty folder is claimed and recorded.
- A folder holding a record is the harness's: its recorded entries may be replaced; anything else in it is left.
- A non-empty folder without a record is refused (`OwnershipError`, naming the folder and what it holds), unless
  `force`: then the harness writes beside the user's entries, names each one it leaves untouched in a warning, and
  still refuses when one of its own entries would replace a user's file of the same name.

The pure part (`parse_record`, `render_record`, `plan_claim`) takes no file system; the I/O part is thin.
Names given to the harness that become file names (`--name`, a run's name) go through `check_plain_name`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from core.atomic import atomic_write_text, remove_temps_of
from core.errors import HarnessError

OWNERSHIP_FILE = ".harness-owned.json"
"""The record's file name, inside the folder it describes."""
RECORD_VERSION = 1
MAX_RECORD_BYTES = 1 << 20
"""A record names a handful of entries (a run folder: 17); anything larger is not one the harness wrote."""
MAX_NAME_BYTES = 255
"""The longest file name the common file systems (ext4, XFS, APFS, NTFS) allow, in UTF-8 bytes."""
_LISTED = 8
"""How many foreign entries a message names before it says how many more there are."""


class OwnershipError(HarnessError):
    """A folder the harness did not write (or a name that is not a plain file name) where it would write."""


@dataclass(frozen=True)
class Entry:
    """One recorded entry, as the harness last saw it.

    Args:
        kind: "file", "dir" or "absent" (claimed, not yet written).
        size: bytes (0 for a folder or an absent entry).
        mtime_ns: modification time in nanoseconds (0 when absent).
    """

    kind: str
    size: int = 0
    mtime_ns: int = 0


@dataclass(frozen=True)
class ClaimPlan:
    """What claiming a folder would do (see `plan_claim`).

    Args:
        entries: the record to write: the earlier record's entries plus the newly claimed names.
        foreign: entries in the folder that the record does not hold (left untouched), sorted.
        blocked: claimed names that exist in the folder without being recorded (the harness would replace a
            file it did not write), sorted.
        refused: the folder may not be claimed (non-empty, no record, no `force`).
    """

    entries: dict[str, Entry]
    foreign: tuple[str, ...]
    blocked: tuple[str, ...]
    refused: bool


def check_plain_name(value: str, what: str) -> str:
    """`value` when it is a plain file name: one path component, not `.` or `..`, no NUL or control character,
    at most 255 UTF-8 bytes.

    Args:
        value: the name as given (e.g. a `--name` value).
        what: what it names, for the message (e.g. "--name").

    Raises:
        OwnershipError: naming the value (escaped) and what is wrong with it.
    """
    problem = None
    if not value:
        problem = "it is empty"
    elif value in {".", ".."}:
        problem = "it names a folder, not a file name"
    elif "/" in value or "\\" in value:
        problem = "it holds a path separator"
    elif any(ord(c) < 32 or ord(c) == 127 for c in value):
        problem = "it holds a control character"
    elif len(value.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        problem = f"it is longer than {MAX_NAME_BYTES} bytes"
    if problem:
        raise OwnershipError(f"{what} {value!r} is not a plain file name: {problem}")
    return value


# -- pure --------------------------------------------------------------------------------------------------------------
def render_record(entries: Mapping[str, Entry], what: str) -> str:
    """The record's text (sorted keys: the same entries give the same bytes)."""
    body = {"version": RECORD_VERSION, "what": what,
            "entries": {k: {"kind": e.kind, "size": e.size, "mtime_ns": e.mtime_ns} for k, e in entries.items()}}
    return json.dumps(body, indent=1, sort_keys=True) + "\n"


def parse_record(text: str, where: str) -> dict[str, Entry]:
    """The entries of a record's text.

    Args:
        text: the file's text.
        where: the file, for messages.

    Raises:
        OwnershipError: not a record this version of the harness writes (naming the file and the problem).
    """
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise OwnershipError(f"{where}: damaged ownership record ({type(exc).__name__}); the harness will not "
                             "reuse this folder: choose another one") from None  # fmt: skip
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("version") != RECORD_VERSION or not isinstance(entries, dict):
        raise OwnershipError(f"{where}: not an ownership record of version {RECORD_VERSION}; the harness will not "
                             "reuse this folder: choose another one")  # fmt: skip
    out: dict[str, Entry] = {}
    for name, e in entries.items():
        ok = (isinstance(e, dict) and e.get("kind") in {"file", "dir", "absent"}
              and all(type(e.get(k)) is int for k in ("size", "mtime_ns")))  # fmt: skip
        if not ok or "/" in name or name in {"", ".", ".."}:
            raise OwnershipError(f"{where}: damaged entry {name!r}; the harness will not reuse this folder")
        out[name] = Entry(e["kind"], e["size"], e["mtime_ns"])
    return out


def plan_claim(present: Iterable[str], record: Mapping[str, Entry] | None, names: Iterable[str],
               force: bool) -> ClaimPlan:  # fmt: skip
    """What claiming a folder does, from what it holds and its record.

    Args:
        present: the folder's entry names (without the record's own file).
        record: its record, or None when it has none.
        names: the entries the command writes there.
        force: write beside entries the harness did not write.
    """
    present = set(present) - {OWNERSHIP_FILE}
    recorded = dict(record or {})
    foreign = tuple(sorted(present - set(recorded)))
    wanted = set(names)
    blocked = tuple(sorted(wanted & set(foreign)))
    refused = record is None and bool(present) and not force
    entries = {**{n: Entry("absent") for n in sorted(wanted - set(recorded))}, **recorded}
    return ClaimPlan(dict(sorted(entries.items())), foreign, blocked, refused)


def _listing(names: tuple[str, ...]) -> str:
    shown = ", ".join(repr(n) for n in names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


# -- I/O ---------------------------------------------------------------------------------------------------------------
def stat_entry(path: Path) -> Entry:
    """The entry as it is on disk now (a symbolic link is never followed: it counts as a file of its own size)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Entry("absent")
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
    return Entry(kind, 0 if kind == "dir" else st.st_size, st.st_mtime_ns)


def read_record(folder: Path) -> dict[str, Entry] | None:
    """The folder's record, or None when it has none.

    The file is opened without following a symbolic link and must be a regular file of at most
    `MAX_RECORD_BYTES`.

    Raises:
        OwnershipError: the record is a link, a special file, too large or damaged.
    """
    path = Path(folder) / OWNERSHIP_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OwnershipError(f"{path}: a symbolic link where the harness keeps its ownership record; the "
                                 "harness will not reuse this folder") from None  # fmt: skip
        raise OwnershipError(f"{path}: cannot read the ownership record ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OwnershipError(f"{path}: not a regular file; the harness will not reuse this folder")
        data = fh.read(MAX_RECORD_BYTES + 1)
    if len(data) > MAX_RECORD_BYTES:
        raise OwnershipError(f"{path}: larger than {MAX_RECORD_BYTES} bytes: not an ownership record the harness "
                             "wrote; it will not reuse this folder")  # fmt: skip
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OwnershipError(f"{path}: not UTF-8: not an ownership record the harness wrote") from None
    return parse_record(text, str(path))


@contextlib.contextmanager
def _folder_locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive flock on the folder itself while its record is read and rewritten: processes that claim
    one folder together (the shards of a preprocess) never lose each other's entries, and no lock file is added."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class Ownership:
    """A claimed folder: which of its entries the harness wrote, and removal of those alone.

    Made by `claim_folder`; not meant to be built directly. Every change re-reads the record under the folder's
    flock, so several processes may note their entries in one folder.

    Args:
        folder: the folder.
        entries: its record.
        what: what the folder is, as the record names it.
    """

    def __init__(self, folder: Path, entries: dict[str, Entry], what: str):
        self.folder, self.entries, self.what = Path(folder), dict(entries), what

    def owns(self, name: str) -> bool:
        """Whether `name` (one entry of the folder) is on the record."""
        return name in self.entries

    def note(self, *names: str) -> None:
        """Record `names` as written now (kind, size, mtime), adding any not yet on the record."""
        with _folder_locked(self.folder):
            self.entries = {**(read_record(self.folder) or {}), **self.entries}
            for name in names:
                self.entries[name] = stat_entry(self.folder / name)
            self._write()

    def remove(self, *names: str) -> list[str]:
        """Remove the named entries that are on the record (a folder with its contents; a link itself, never its
        target); names not on the record are left and returned.

        Returns:
            the names that were not removed because the record does not hold them.
        """
        left = []
        with _folder_locked(self.folder):
            self.entries = {**(read_record(self.folder) or {}), **self.entries}
            for name in names:
                if name not in self.entries:
                    left.append(name)
                    continue
                path = self.folder / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                self.entries[name] = Entry("absent")
            self._write()
        return left

    def _write(self) -> None:
        atomic_write_text(self.folder / OWNERSHIP_FILE, render_record(self.entries, self.what))


def claim_folder(folder: str | Path, names: Iterable[str], *, what: str, force: bool = False,
                 warn: Callable[[str], None] | None = None) -> Ownership:  # fmt: skip
    """Claim `folder` for writing `names` in it: create it when missing, refuse one the harness did not write.

    Args:
        folder: the output folder the user gave.
        names: the entries the command writes there (one level deep).
        what: what the folder is ("run folder", "demo corpus", ...), for the record and messages.
        force: write into a non-empty folder without a record, beside what it holds.
        warn: called with a one-line warning naming the entries `force` leaves untouched (default: none).

    Returns:
        the claim, its record written.

    Raises:
        OwnershipError: the folder is not a folder, holds no record and is not empty (without `force`), or holds
            a file the harness did not write under one of `names`.
    """
    folder = Path(folder)
    if (folder.exists() or folder.is_symlink()) and not folder.is_dir():
        raise OwnershipError(f"{folder}: not a folder; the {what} must be a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    with _folder_locked(folder):
        # Every record write holds this flock: a temporary record file present now is one a kill cut short.
        remove_temps_of(folder / OWNERSHIP_FILE)
        record = read_record(folder)
        plan = plan_claim(os.listdir(folder), record, names, force)
        if plan.refused:
            raise OwnershipError(
                f"{folder}: not empty and holds no record of the harness writing it ({OWNERSHIP_FILE}); it holds "
                f"{_listing(plan.foreign)}. The harness reuses only folders it wrote: choose a new or empty folder "
                f"for the {what}, or pass --force to write beside these (they are then left untouched)"
            )
        if plan.blocked:
            raise OwnershipError(
                f"{folder}: holds {_listing(plan.blocked)}, which the harness would write as part of the {what} but "
                "did not write itself; move them away or choose another folder (nothing was changed)"
            )
        if plan.foreign and warn is not None and record is None:
            warn(f"{folder}: left untouched (not written by the harness): {_listing(plan.foreign)}")
        entries = {n: stat_entry(folder / n) if e.kind != "absent" or (folder / n).exists() else e
                   for n, e in plan.entries.items()}  # fmt: skip
        claim = Ownership(folder, entries, what)
        if entries != record:
            claim._write()
    return claim
