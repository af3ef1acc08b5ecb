"""The foundation every layer builds on: the base error, atomic writes, locks, stable hashes, feature widths.

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
from core.errors import HarnessError
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
    "acquire_lock",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_plain_name",
    "claim_folder",
    "jsonable",
    "lock_file_name",
    "read_record",
    "release_lock",
    "remove_stale_temps",
    "remove_temps_of",
    "sha256_file",
    "stable_hash",
]
