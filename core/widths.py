"""Per-frame feature widths: the one table that the config, the audio extractor, the models and the tests read.

The paper's audio features (Sec. III.C): VGGish 128, openSMILE MFCC 39 (13 coefficients with deltas and
delta-deltas) and eGeMAPS 23 low-level descriptors (v01a/v01b); 190 together.
"""

from __future__ import annotations

from types import MappingProxyType

MFCC_DIM = 39
EGEMAPS_DIM = 23
VGGISH_DIM = 128

AUDIO_FEATURE_WIDTHS = MappingProxyType({"vggish": VGGISH_DIM, "mfcc": MFCC_DIM, "egemaps": EGEMAPS_DIM})
"""Width of each audio feature by its config name (read-only)."""

PAPER_AUDIO_DIM = sum(AUDIO_FEATURE_WIDTHS.values())
"""All three audio features concatenated, as in the paper (190)."""
