"""The config's path through stage-2 training: followed call by call, it goes down the layers and comes back to a
module it had left only where the stage skeleton hands control back (fit, finish) and where the loop runs the
validation; the data layer reads the config once (`harness.data.fold_data.read_fold_data`).

Counted: every call into a harness module (outside the config package) that receives a config object as an
argument (generator resumptions are not calls), consecutive calls in one module merged; a return is a visit to a
module already left.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from harness.config import load_config
from harness.stages.stage2 import train_stage2
from tests.harness._corpus import make_corpus
from tests.harness._stage2 import settings

MAX_RETURNS = 4  # skeleton -> stage2.fit, loop -> validation streams, skeleton -> stage2 finish -> its predictions


def config_path(call: Any) -> list[str]:
    """The harness modules that receive a config object while `call()` runs, consecutive repeats merged."""
    seq: list[str] = []

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call" or frame.f_code.co_flags & inspect.CO_GENERATOR:
            return  # a generator's frame is entered again at every item: a resumption, not a call
        mod = frame.f_globals.get("__name__", "")
        if not mod.startswith("harness.") or mod.startswith("harness.config"):
            return
        receives = any(type(v).__module__.startswith("harness.config") for v in frame.f_locals.values())
        if receives and (not seq or seq[-1] != mod):
            seq.append(mod)

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return seq


def returns(seq: list[str]) -> int:
    """Visits to a module the path had already left."""
    left: set[str] = set()
    count = 0
    for prev, mod in zip([None, *seq], seq, strict=False):
        count += mod in left
        if prev is not None and prev != mod:
            left.add(prev)
    return count


def test_returns_counts_visits_to_a_module_already_left() -> None:
    assert returns([]) == 0 and returns(["a", "b", "c"]) == 0
    assert returns(["a", "b", "a", "b"]) == 2 and returns(["a", "b", "c", "a", "c"]) == 2


def test_stage2_config_reaches_the_data_layer_once(tmp_path: Path) -> None:
    layout, cache = make_corpus(tmp_path / "corpus")
    cfg = load_config("quick", settings("stage2.epochs=1"))
    seq = config_path(lambda: train_stage2(cfg, layout, cache, 0, tmp_path / "run"))
    assert seq[0] == "harness.stages.stage2" and "harness.train.loop" in seq, seq
    assert seq.count("harness.data.fold_data") == 1, seq  # the config's one call into the data layer
    assert "harness.data.fold_data" in seq[: seq.index("harness.train.loop")], seq  # read before training
    assert returns(seq) <= MAX_RETURNS, " > ".join(seq)
