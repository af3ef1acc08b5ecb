"""The foundation every layer builds on: the base error, atomic writes, locks, stable hashes, feature widths.

It imports nothing of the project's four packages (`models`, `preprocessing`, `submissions`, `harness`), and only
the standard library and numpy, so that each of them may import it.
"""

from core.atomic import DiskFullError, atomic_open, atomic_write_bytes, atomic_write_text, remove_stale_temps
from core.errors import HarnessError
from core.hashing import HashError, jsonable, sha256_file, stable_hash
from core.locking import FolderLock, LockHeldError, acquire_lock, release_lock
from core.widths import AUDIO_FEATURE_WIDTHS, EGEMAPS_DIM, MFCC_DIM, PAPER_AUDIO_DIM, VGGISH_DIM

__all__ = [
    "AUDIO_FEATURE_WIDTHS",
    "EGEMAPS_DIM",
    "MFCC_DIM",
    "PAPER_AUDIO_DIM",
    "VGGISH_DIM",
    "DiskFullError",
    "FolderLock",
    "HarnessError",
    "HashError",
    "LockHeldError",
    "acquire_lock",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "jsonable",
    "release_lock",
    "remove_stale_temps",
    "sha256_file",
    "stable_hash",
]
