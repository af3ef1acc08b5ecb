"""The engine seam (`harness.train.strategy`): the loop calls only its engine strategy; DeepSpeed and plain torch
both train behind it, resume exactly, and agree with each other where DeepSpeed is the plain loop (ZeRO 0, fp32)."""

from __future__ import annotations

import ast
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.config import DeepSpeedSection, config_hash, load_config
from harness.config.cli import overrides_from_args
from harness.folders.run import RunDir
from harness.runtime.distributed import Strategy, current_strategy
from harness.train.errors import TrainError
from harness.train.loop import fit
from harness.train.strategy import ENGINES, DeepSpeedStrategy, TorchStrategy, engine_strategy
from harness.train.weights import load_weights
from tests.harness._engine import ZERO0, KilledError, Pairs, evaluator, killing_loss, loop_cfg, loss_fn, tiny_model

ROOT = Path(__file__).resolve().parents[3]


def _run(tmp_path: Path, name: str) -> RunDir:
    run = RunDir(tmp_path / name)
    run.prepare(load_config("quick"), resume=False)
    return run


def test_the_loop_imports_no_engine() -> None:
    """The loop module names neither DeepSpeed nor an engine's methods: it calls its strategy."""
    tree = ast.parse((ROOT / "harness" / "train" / "loop.py").read_text(encoding="utf-8"))
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m.split(".")[0] == "deepspeed"]
    calls = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not calls & {"save_checkpoint", "load_checkpoint", "initialize", "global_steps_", "get_last_lr"}


class Spy:
    """A `TorchStrategy` that records which of its methods the loop called."""

    def __init__(self, processes: Strategy) -> None:
        self.inner = TorchStrategy(processes)
        self.calls: list[str] = []
        self.name = "spy"

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self.inner, attr)
        if callable(value):
            def record(*args: Any, **kwargs: Any) -> Any:
                self.calls.append(attr)
                return value(*args, **kwargs)

            return record
        return value


def test_the_loop_trains_through_its_strategy_only(tmp_path: Path) -> None:
    spy = Spy(current_strategy())
    run = _run(tmp_path, "spy")
    res = fit(tiny_model(), Pairs(32), loss_fn, loop_cfg(epochs=2), ZERO0, run, seed=0,
              evaluate=evaluator(Pairs(16, seed=1)), engine=spy)  # type: ignore[arg-type]  # fmt: skip
    assert res.steps_per_epoch == 4
    assert spy.calls, "the loop called nothing"
    assert spy.calls[0] == "setup" and spy.calls[-1] == "close"
    assert spy.calls.count("backward") == spy.calls.count("step") == 8  # 2 epochs x 4 micro batches
    assert spy.calls.count("save") == 2 and "eval" in spy.calls and "full_state_dict" in spy.calls


@pytest.mark.parametrize("engine", ENGINES)
def test_each_engine_learns_and_writes_the_run_folder(tmp_path: Path, engine: str) -> None:
    run = _run(tmp_path, engine)
    val = Pairs(64, seed=1)
    res = fit(tiny_model(), Pairs(96), loss_fn, loop_cfg(epochs=4), ZERO0, run, seed=0, evaluate=evaluator(val),
              engine=engine)  # fmt: skip
    hist = run.epoch_records()
    assert hist, "no epoch was recorded"
    assert [r["step"] for r in hist] == [12, 24, 36, 48]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] and res.best["p_va"] > 0.5
    assert run.best_weights.is_file() and len(list(run.checkpoints.glob("epoch*"))) == 1


def test_torch_and_deepspeed_agree_at_zero_0_fp32(tmp_path: Path) -> None:
    """Same data, seed, accumulation and clipping: the two engines end with the same weights and records."""
    loop = loop_cfg(epochs=3, micro=8, accum=2)
    runs = {}
    for engine in ENGINES:
        runs[engine] = _run(tmp_path, engine)
        fit(tiny_model(), Pairs(48), loss_fn, loop, ZERO0, runs[engine], seed=3, engine=engine)
    a, b = (load_weights(runs[e].best_weights) for e in ENGINES)
    assert a.keys() == b.keys() and a
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5, msg=k)
    ha, hb = (runs[e].epoch_records() for e in ENGINES)
    assert [r["step"] for r in ha] == [r["step"] for r in hb] == [3, 6, 9]
    assert [r["lr"] for r in ha] == pytest.approx([r["lr"] for r in hb])
    assert [r["train_loss"] for r in ha] == pytest.approx([r["train_loss"] for r in hb], abs=1e-5)


def test_torch_engine_resumes_exactly(tmp_path: Path) -> None:
    cfg = load_config("quick")
    loop, data = loop_cfg(epochs=4, micro=8, accum=2), Pairs(48)
    full, cut = _run(tmp_path, "full"), _run(tmp_path, "cut")
    fit(tiny_model(), data, loss_fn, loop, ZERO0, full, seed=3, engine="torch")
    with pytest.raises(KilledError):
        fit(tiny_model(), data, killing_loss(14), loop, ZERO0, cut, seed=3, engine="torch")
    assert [r["epoch"] for r in cut.epoch_records()] == [0, 1]
    cut.prepare(cfg, resume=True)
    fit(tiny_model(7), data, loss_fn, loop, ZERO0, cut, seed=3, resume=True, engine="torch")
    a, b = load_weights(full.best_weights), load_weights(cut.best_weights)
    assert a.keys() == b.keys() and a
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert [r["step"] for r in cut.epoch_records()] == [r["step"] for r in full.epoch_records()] == [3, 6, 9, 12]


def test_engine_choice_and_its_refusals() -> None:
    one = current_strategy()
    assert isinstance(engine_strategy("deepspeed", one), DeepSpeedStrategy)
    assert isinstance(engine_strategy("torch", one), TorchStrategy)
    with pytest.raises(TrainError, match="known engines are deepspeed, torch"):
        engine_strategy("jax", one)
    with pytest.raises(TrainError, match="one process"):
        TorchStrategy(Strategy(rank=0, world_size=2, local_rank=0, device=torch.device("cpu")))
    half = {"bf16": {"enabled": True}}
    with pytest.raises(TrainError, match="fp32"):
        TorchStrategy(one).setup(tiny_model(), torch.optim.SGD(tiny_model().parameters(), lr=0.1), None, half)  # type: ignore[arg-type]


def test_engine_flag_sets_the_runtime_engine_outside_the_hash() -> None:
    assert overrides_from_args(Namespace(overrides=["seed=1"], engine="torch")) == ["seed=1", "runtime.engine=torch"]
    assert overrides_from_args(Namespace(overrides=[], engine=None)) == []
    base, torch_cfg = load_config("demo"), load_config("demo", ["runtime.engine=torch"])
    assert base.runtime.engine == "deepspeed" and torch_cfg.runtime.engine == "torch"
    assert load_config("quick").runtime.engine == "torch"  # the quick demo's measured choice (quick.yaml)
    assert config_hash(base) == config_hash(torch_cfg)  # the engine does not name a different run
    assert DeepSpeedSection(0, "fp32") == ZERO0
