"""The DeepSpeed loop: batches, the DeepSpeed config, a tiny model that learns, files of the run folder, locks, the
fused AdamW under every ZeRO stage."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from harness.config import DeepSpeedSection, load_config, train_batch_size
from harness.folders.run import RunDir, RunLockedError
from harness.train.loop import (
    EpochBatchSampler,
    TrainError,
    adamw_name,
    build_adamw,
    deepspeed_config,
    fit,
    resolve_precision,
    steps_per_epoch,
)
from harness.train.optimiser import adamw_implementation
from harness.train.schedule import Schedule, lr_at
from harness.train.weights import load_weights
from tests.harness._engine import ZERO0, Pairs, evaluator, loop_cfg, loss_fn, tiny_model


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 200), micro=st.integers(1, 9), accum=st.integers(1, 3), world=st.integers(1, 3),
    epoch=st.integers(0, 5), seed=st.integers(0, 3),
)  # fmt: skip
def test_split_across_processes_sees_the_same_step_batches(n, micro, accum, world, epoch, seed):
    """W processes x A accumulation steps see exactly the samples of one process accumulating W*A micro batches."""
    single = list(EpochBatchSampler(n, micro, accum * world, 1, 0, seed, epoch))
    ranks = [list(EpochBatchSampler(n, micro, accum, world, r, seed, epoch)) for r in range(world)]
    steps = steps_per_epoch(n, micro, accum, world)
    assert steps == steps_per_epoch(n, micro, accum * world, 1)
    assert all(len(r) == steps * accum for r in ranks)
    for s in range(steps):
        one = sorted(i for b in single[s * accum * world : (s + 1) * accum * world] for i in b)
        many = sorted(i for r in ranks for b in r[s * accum : (s + 1) * accum] for i in b)
        assert one == many
    used = [i for r in ranks for b in r for i in b]
    assert len(used) == len(set(used))  # no sample twice in an epoch
    assert all(0 <= i < n for i in used)


def test_sampler_is_a_function_of_seed_and_epoch():
    a = list(EpochBatchSampler(50, 4, 1, 1, 0, seed=1, epoch=3))
    assert a == list(EpochBatchSampler(50, 4, 1, 1, 0, seed=1, epoch=3))
    assert a != list(EpochBatchSampler(50, 4, 1, 1, 0, seed=1, epoch=4))
    assert a != list(EpochBatchSampler(50, 4, 1, 1, 0, seed=2, epoch=3))
    assert steps_per_epoch(50, 4, 1, 1) == 13 and steps_per_epoch(50, 4, 2, 2) == 3


def test_deepspeed_config_is_derived_from_the_run_config():
    cfg = load_config("quick", ["stage2.micro_batch=3", "stage2.grad_accum=4", "deepspeed.zero_stage=3",
                                "stage2.grad_clip=0.5"])  # fmt: skip
    ds = deepspeed_config(cfg.stage2, cfg.deepspeed, 2, "bf16")
    assert ds["train_batch_size"] == train_batch_size(cfg.stage2, 2) == 24
    assert ds["train_micro_batch_size_per_gpu"] == 3 and ds["gradient_accumulation_steps"] == 4
    assert ds["zero_optimization"] == {"stage": 3}
    assert ds["bf16"] == {"enabled": True} and ds["fp16"] == {"enabled": False}
    assert ds["gradient_clipping"] == 0.5
    assert "optimizer" not in ds  # torch AdamW is passed in: no DeepSpeed op is compiled
    json.dumps(ds)


def test_precision_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(TrainError, match="bf16"):
        resolve_precision("bf16", cpu)


def prepared(tmp_path, name="run"):
    run = RunDir(tmp_path / name)
    run.prepare(load_config("quick"), resume=False)
    return run


def test_fit_learns_and_writes_the_run_folder(tmp_path):
    train, val = Pairs(96), Pairs(64, seed=1)
    run = prepared(tmp_path)
    loop = loop_cfg(epochs=4)
    res = fit(tiny_model(), train, loss_fn, loop, ZERO0, run, seed=0, evaluate=evaluator(val))
    hist = run.epoch_records()
    assert [r["epoch"] for r in hist] == [0, 1, 2, 3]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert hist[-1]["val_p_va"] > 0.5
    for r in hist:
        assert set(r) >= {"epoch", "train_loss", "val_ccc_v", "val_ccc_a", "val_p_va", "lr", "time_s", "step"}
    # lr logged after the epoch = the schedule at the step count reached
    sched = Schedule.from_config(loop.schedule, res.steps_per_epoch)
    assert res.steps_per_epoch == 12
    assert hist[1]["lr"] == pytest.approx(lr_at(2 * 12, sched))
    best = max(hist, key=lambda r: r["val_p_va"])
    assert res.best_epoch == best["epoch"] and res.best["p_va"] == pytest.approx(best["val_p_va"])
    ds = json.loads((run.path / "ds_config.json").read_text())
    assert ds["train_batch_size"] == 8 and ds["zero_optimization"]["stage"] == 0
    # best.safetensors holds the best epoch's weights: a fresh module reproduces its validation score
    model = tiny_model(5)
    model.load_state_dict(load_weights(run.best_weights))
    model.eval()
    with torch.no_grad():
        again = evaluator(val)(lambda x: model(x))
    assert again["p_va"] == pytest.approx(best["val_p_va"], abs=1e-5)
    assert len(list(run.checkpoints.glob("epoch*"))) == 1  # only the latest epoch's checkpoint is kept


@pytest.mark.parametrize("engine", ["deepspeed", "torch"])
def test_validation_runs_in_eval_mode(tmp_path, engine):
    # Dropout off while validating (the scores choose the best epoch), back on for the next epoch's training.
    train, val = Pairs(32), Pairs(16, seed=1)
    model = tiny_model()
    seen: dict[str, list[bool]] = {"train": [], "eval": []}

    def evaluate(forward):
        seen["eval"].append(model.training)
        return evaluator(val)(forward)

    def training_loss(engine, batch):
        seen["train"].append(model.training)
        return loss_fn(engine, batch)

    fit(model, train, training_loss, loop_cfg(epochs=2), ZERO0, prepared(tmp_path), seed=0, evaluate=evaluate,
        engine=engine)
    assert seen["eval"] == [False, False]
    assert seen["train"] and all(seen["train"])


def test_the_best_epoch_is_kept_not_the_last(tmp_path):
    # Scripted validation scores: epoch 1 is the best, the last epoch is not; its weights are the ones kept.
    train = Pairs(32)
    model = tiny_model()
    script = iter([0.2, 0.9, 0.1, 0.3])
    snapshots: list[dict[str, torch.Tensor]] = []

    def evaluate(forward):
        snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        p = next(script)
        return {"ccc_v": p, "ccc_a": p, "p_va": p}

    run = prepared(tmp_path)
    res = fit(model, train, loss_fn, loop_cfg(epochs=4), ZERO0, run, seed=0, evaluate=evaluate)
    assert res.best_epoch == 1 and res.best["p_va"] == 0.9
    kept = load_weights(run.best_weights)
    assert set(kept) == set(snapshots[1])
    for k, v in snapshots[1].items():
        torch.testing.assert_close(kept[k], v, rtol=0, atol=0, msg=k)
    assert any(not torch.equal(kept[k], snapshots[3][k]) for k in kept)  # the last epoch's weights differ


def test_zero3_trains_and_gathers_weights(tmp_path):
    run = prepared(tmp_path)
    res = fit(tiny_model(), Pairs(48), loss_fn, loop_cfg(epochs=2), DeepSpeedSection(3, "fp32"), run, seed=0,
              evaluate=evaluator(Pairs(32, 1)))  # fmt: skip
    state = load_weights(run.best_weights)
    assert state["0.weight"].shape == (16, 8)  # gathered, not a ZeRO-3 shard
    assert res.best["p_va"] > 0.0


def test_too_little_data_is_a_clear_error(tmp_path):
    with pytest.raises(TrainError, match="fewer than one optimiser step"):
        fit(tiny_model(), Pairs(5), loss_fn, loop_cfg(micro=4, accum=3), ZERO0, prepared(tmp_path), seed=0)


def test_run_folder_lock(tmp_path):
    a, b = RunDir(tmp_path / "r"), RunDir(tmp_path / "r")
    with a.locked(), pytest.raises(RunLockedError, match="another process"):
        b.lock()
    b.lock()  # released by the first holder
    b.unlock()


def test_run_folder_records(tmp_path):
    run = prepared(tmp_path)
    assert run.final_record() is None
    run.write_metrics([{"epoch": 0, "train_loss": 1.0}, {"epoch": 1, "train_loss": 0.5}])
    run.write_final({"config_hash": "x", "val": {"p_va": 0.3}})
    assert run.final_record()["val"] == {"p_va": 0.3}
    assert json.loads((run.path / "summary.json").read_text())["event"] == "final"
    run.truncate_epochs(0)
    assert run.read_metrics() == [{"epoch": 0, "train_loss": 1.0}]
    assert (run.path / "git.txt").read_text().strip()


def test_adamw_is_fused_where_torch_has_the_kernel_else_foreach():
    assert adamw_implementation("cpu") == "fused"  # torch >= 2.4 has a fused CPU kernel for float32
    assert adamw_implementation("meta") == "foreach"  # no fused kernel for this device: the foreach fallback
    p = nn.Parameter(torch.zeros(4))
    opt = build_adamw([p], torch.device("cpu"), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    assert opt.defaults["fused"] and opt.defaults["betas"] == (0.9, 0.99) and adamw_name(opt) == "adamw fused"


def test_fused_adamw_under_every_zero_stage_equals_the_for_loop(tmp_path, monkeypatch):
    """ZeRO 0-3 step the fused kernel on their own flat fp32 partitions and end at the weights of torch's default
    (per-parameter loop) AdamW under ZeRO-0, to float rounding."""

    def train(stage: int, name: str) -> tuple[str, dict[str, torch.Tensor]]:
        run = prepared(tmp_path, name)
        res = fit(tiny_model(), Pairs(48), loss_fn, loop_cfg(epochs=2), DeepSpeedSection(stage, "fp32"), run, seed=0)
        return res.extra["optimizer"], load_weights(run.best_weights)

    with monkeypatch.context() as m:
        m.setattr("harness.train.optimiser.adamw_implementation", lambda *_a, **_k: "for-loop")
        name, reference = train(0, "for_loop")
    assert name == "adamw for-loop"
    for stage in range(4):
        name, weights = train(stage, f"zero{stage}")
        assert name == "adamw fused", stage
        assert weights.keys() == reference.keys()
        for k in reference:
            assert not torch.equal(reference[k], tiny_model().state_dict()[k])  # the weights moved
            torch.testing.assert_close(weights[k], reference[k], rtol=0, atol=1e-6, msg=f"ZeRO-{stage} {k}")
