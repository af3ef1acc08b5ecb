"""The foundation every layer builds on: the base error, atomic writes, bounded reads, locks, stable hashes,
feature widths.

It imports nothing of the project's four packages (`models`, `preprocessing`, `submissions`, `harness`), and only
the standard library and numpy, so that each of them may import it.
"""

from core.atomic import (
    DiskFullError,
    atomic_open,
    atomic_write_bytes,
    atomic_write_text,
    remove_stale_temps,
    remove_temps_of,
)
from core.errors import HarnessError, printable
from core.hashing import HashError, jsonable, sha256_file, stable_hash
from core.isolation import ChildCrashedError, IsolatedWorker
from core.locking import FolderLock, LockHeldError, acquire_lock, lock_file_name, release_lock
from core.ownership import (
    OWNERSHIP_FILE,
    Ownership,
    OwnershipError,
    check_plain_name,
    claim_folder,
    read_record,
)
from core.safe_read import (
    ReadError,
    check_regular,
    iter_json_lines,
    parse_json,
    read_bytes,
    read_json,
    read_npy,
    read_npz,
    read_text,
)
from core.widths import AUDIO_FEATURE_WIDTHS, EGEMAPS_DIM, MFCC_DIM, PAPER_AUDIO_DIM, VGGISH_DIM

__all__ = [
    "AUDIO_FEATURE_WIDTHS",
    "EGEMAPS_DIM",
    "MFCC_DIM",
    "OWNERSHIP_FILE",
    "PAPER_AUDIO_DIM",
    "VGGISH_DIM",
    "ChildCrashedError",
    "DiskFullError",
    "FolderLock",
    "HarnessError",
    "HashError",
    "IsolatedWorker",
    "LockHeldError",
    "Ownership",
    "OwnershipError",
    "ReadError",
    "acquire_lock",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_plain_name",
    "check_regular",
    "claim_folder",
    "iter_json_lines",
    "jsonable",
    "lock_file_name",
    "parse_json",
    "printable",
    "read_bytes",
    "read_json",
    "read_npy",
    "read_npz",
    "read_record",
    "read_text",
    "release_lock",
    "remove_stale_temps",
    "remove_temps_of",
    "sha256_file",
    "stable_hash",
]
