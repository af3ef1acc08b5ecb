"""The planted regressions of the battery (`tests/regression/test_battery.py`), and a pytest plugin that plants one.

Each `Mutation` is a change a careless refactor makes, applied in-process to the real function: `plant` replaces
the function's attribute in its defining module and in every loaded module that bound it with `from ... import`
(what editing the source would change), through a `pytest.MonkeyPatch`, so that undoing restores everything.

As a plugin (`python -m pytest -p tests.regression._mutations ...`) this module plants `$HARNESS_MUTATION` once
collection has imported the test modules (so their own `from ... import` names are replaced too), and undoes it at
exit; without the variable it plants nothing.

Each mutation names what should catch it: unit tests (`tests`, pytest node ids run in a subprocess with the
mutation planted: one of them must fail) and the part of the guarded run it affects (`part`, rerun in-process and
checked against the recorded leaderboard; None where the part would need stages the battery does not rerun).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

ENV = "HARNESS_MUTATION"
"""The environment variable naming the mutation the plugin plants."""

BDCA_PART = "bdca_fold0"
"""The guarded run's part a stage-2 mutation reruns: BDCA on fold 0 (Table I, Table IV's row, the submission)."""

AUDIO_PART = "audio+bdca_fold0"
"""A preprocessing mutation's part: the audio features made again, then `BDCA_PART` on them."""

STAGE1_PART = "stage1+bdca_fold0"
"""A stage-1 mutation's part: stage 1 trained again and its features extracted, then `BDCA_PART` on them."""

AUDIO_LAG_FRAMES = 5
"""How many video frames late the planted alignment bug reads the audio features."""


def plant(mp: pytest.MonkeyPatch, owner: Any, name: str, new: Any) -> int:
    """Replace `owner.name` and every loaded module's binding of the same object by `new`; return how many places.

    Args:
        mp: the monkeypatch that undoes it.
        owner: the module or class that defines the attribute.
        name: the attribute.
        new: the replacement.
    """
    old = getattr(owner, name)
    mp.setattr(owner, name, new)
    places = 1
    if isinstance(owner, type):
        return places  # a method: every caller reaches it through the class
    for mod in list(sys.modules.values()):
        if mod is None or mod is owner:
            continue
        try:
            bound = [k for k, v in vars(mod).items() if v is old]
        except TypeError:  # a module-like object without a __dict__
            continue
        for k in bound:
            mp.setattr(mod, k, new)
            places += 1
    return places


# ---------------------------------------------------------------------------------------------------------------
# The mutations: each `apply` plants one bug, wrapping the real function where the bug is a change of its inputs
# or outputs, replacing it where the bug is inside.
# ---------------------------------------------------------------------------------------------------------------


def _audio_late(mp: pytest.MonkeyPatch) -> None:
    import preprocessing.audio as audio

    orig = audio.align_rows_to_frames

    def late(*args: Any, **kwargs: Any) -> np.ndarray:
        rows = orig(*args, **kwargs)
        k = min(AUDIO_LAG_FRAMES, rows.size)
        return np.concatenate([np.repeat(rows[:1], k), rows[: rows.size - k]])  # frame i reads frame i-5's row

    plant(mp, audio, "align_rows_to_frames", late)


def _gate_wrong_stream(mp: pytest.MonkeyPatch) -> None:
    import models.bdca as bdca

    def forward(self: Any, x: torch.Tensor, x_att: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gates = bdca.gate_weights(x, self.gate.weight.T, self.temperature)  # the bug: X, not X_att (eq. 3)
        return bdca.apply_gates(x, x_att, gates), gates

    plant(mp, bdca.DynamicWeight, "forward", forward)


def _gate_columns_swapped(mp: pytest.MonkeyPatch) -> None:
    import models.bdca as bdca

    orig = bdca.apply_gates

    def swapped(x: torch.Tensor, x_att: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        return orig(x, x_att, gates.flip(-1))  # G_1 weighs the original, G_0 the cross-attended features

    plant(mp, bdca, "apply_gates", swapped)


def _labels_unmasked(mp: pytest.MonkeyPatch) -> None:
    import harness.stages.stage2 as stage2

    orig = stage2.stage2_loss

    def unmasked(model: Any, batch: dict[str, torch.Tensor], modality_dropout: float = 0.0) -> torch.Tensor:
        # -5 frames count in the loss
        return orig(model, {**batch, "label_mask": ~batch["pad_mask"]}, modality_dropout)

    plant(mp, stage2, "stage2_loss", unmasked)


def _windows_overwritten(mp: pytest.MonkeyPatch) -> None:
    import harness.stages.predict as predict

    def overwrite(n: int, starts: Any, length: int, window_preds: np.ndarray) -> np.ndarray:
        out = np.zeros((n, 2), dtype=np.float64)
        for s, p in zip(starts, window_preds, strict=True):
            e = min(s + length, n)
            out[s:e] = p[: e - s]  # the later window wins where windows overlap
        return out

    plant(mp, predict, "average_windows", overwrite)


def _prediction_unnormalised(mp: pytest.MonkeyPatch) -> None:
    import harness.stages.predict as predict
    from harness.data.datasets import NormStats

    orig = predict.load_norm_stats

    def identity(path: Any) -> NormStats:
        s = orig(path)
        return dataclasses.replace(s, visual_mean=np.zeros_like(s.visual_mean),
                                   visual_std=np.ones_like(s.visual_std), audio_mean=np.zeros_like(s.audio_mean),
                                   audio_std=np.ones_like(s.audio_std))  # fmt: skip

    plant(mp, predict, "load_norm_stats", identity)


def _writer_one_frame_off(mp: pytest.MonkeyPatch) -> None:
    import submissions.formats as formats

    orig = formats.build_submission_rows

    def shifted(preds: Any, *args: Any, **kwargs: Any) -> Any:
        ahead = {v: np.concatenate([a[1:], a[-1:]]) if len(a) else a for v, a in preds.items()}
        return orig(ahead, *args, **kwargs)  # frame k gets frame k+1's prediction

    plant(mp, formats, "build_submission_rows", shifted)


def _stage1_frozen_whole(mp: pytest.MonkeyPatch) -> None:
    from models.vit import VAViT

    orig = VAViT.apply_freezing

    def frozen(self: Any, frozen_blocks: int, freeze_embedding: bool = True) -> None:
        orig(self, len(self.blocks), True)  # every block and the embedding: only the head and final norm train

    plant(mp, VAViT, "apply_freezing", frozen)


def _mse_loss(mp: pytest.MonkeyPatch) -> None:
    import harness.stages.stage2 as stage2

    def mse(model: Any, batch: dict[str, torch.Tensor], modality_dropout: float = 0.0) -> torch.Tensor:
        pred = stage2.stage2_forward(model, batch, modality_dropout)
        mask = batch["label_mask"]
        if int(mask.sum()) < 2:
            return pred.sum() * 0.0
        return torch.nn.functional.mse_loss(pred[mask], batch["labels"].float()[mask])

    plant(mp, stage2, "stage2_loss", mse)


def _ccc_loss_is_mse(mp: pytest.MonkeyPatch) -> None:
    import models.losses as losses

    def mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
            eps: float = 1.0e-8) -> torch.Tensor:  # fmt: skip
        keep = torch.ones(pred.shape[:-1], dtype=torch.bool) if mask is None else mask
        return torch.mean((pred[keep] - target[keep]) ** 2)

    plant(mp, losses, "ccc_loss", mse)


def _validation_in_train_mode(mp: pytest.MonkeyPatch) -> None:
    from deepspeed.runtime.engine import DeepSpeedEngine

    import harness.train.strategy as strategy

    # `eval()` before validation does nothing, whichever trainer runs (the quick demo's is the torch one).
    plant(mp, DeepSpeedEngine, "eval", lambda self: self)
    plant(mp, strategy.TorchStrategy, "eval", lambda self: None)


def _lr_stuck(mp: pytest.MonkeyPatch) -> None:
    import harness.train.schedule as schedule

    plant(mp, schedule, "lr_at", lambda step, s: s.start_lr)


def _last_epoch_kept(mp: pytest.MonkeyPatch) -> None:
    import harness.train.loop as engine

    orig = engine._evaluate_and_keep_best

    def keep_last(eng: Any, evaluate: Any, forward: Any, epoch: int, state: Any) -> Any:
        state.best_epoch, state.best = -1, {}  # every epoch counts as the first: the last one is kept
        return orig(eng, evaluate, forward, epoch, state)

    plant(mp, engine, "_evaluate_and_keep_best", keep_last)


def _test_video_in_training(mp: pytest.MonkeyPatch) -> None:
    import harness.data.splits as folds

    orig = folds.fold_split

    def leaky(*args: Any, **kwargs: Any) -> Any:
        f = orig(*args, **kwargs)
        leak = f.test[:1] or f.val[:1]
        return dataclasses.replace(f, train=f.train + leak)  # a held-out video also trains

    plant(mp, folds, "fold_split", leaky)


def _ensemble_weights_see_held_out(mp: pytest.MonkeyPatch) -> None:
    import submissions.ensemble as ensemble

    def leaky(strata: Any, step: float = ensemble.STEP, per_dimension: bool = False) -> list[Any]:
        total = strata[0]
        for s in strata[1:]:
            total = total + s
        return [ensemble.search_weights(total, step, per_dimension) for _ in strata]  # every part's own frames too

    plant(mp, ensemble, "nested_search", leaky)


@dataclass(frozen=True)
class Mutation:
    """One planted regression.

    Args:
        name: its id (`$HARNESS_MUTATION`, the test's parameter).
        area: the part of the system it breaks.
        what: the bug, in words.
        apply: plants it through a monkeypatch.
        tests: unit-test node ids that should fail with it planted.
        part: the guarded run's part to rerun with it planted (None: not rerun).
    """

    name: str
    area: str
    what: str
    apply: Callable[[pytest.MonkeyPatch], None]
    tests: tuple[str, ...] = ()
    part: str | None = None


MUTATIONS: tuple[Mutation, ...] = (
    Mutation("audio_late", "preprocessing alignment",
             f"audio features read {AUDIO_LAG_FRAMES} frames late (preprocessing.audio.align_rows_to_frames)",
             _audio_late,
             ("tests/preprocessing/test_audio.py::test_alignment_known_values_and_repeated_last_start",
              "tests/preprocessing/test_vfr_audio.py::test_frame_times_choose_the_rows"), AUDIO_PART),
    Mutation("gate_wrong_stream", "fusion math",
             "the dynamic weight's gates computed from X instead of X_att (models.bdca.DynamicWeight.forward)",
             _gate_wrong_stream, ("tests/models/test_bdca.py::test_dynamic_weight_module_follows_eqs_3_to_5",),
             BDCA_PART),
    Mutation("gate_columns_swapped", "fusion math",
             "gate columns swapped: G_0 weighs X_att, G_1 weighs X (models.bdca.apply_gates)",
             _gate_columns_swapped,
             ("tests/models/test_bdca.py::test_forced_gates_select_original_or_attended",
              "tests/models/test_bdca.py::test_dynamic_weight_module_follows_eqs_3_to_5"), BDCA_PART),
    Mutation("labels_unmasked", "masking",
             "-5 labels not masked in the stage-2 loss (harness.stages.stage2.stage2_loss)",
             _labels_unmasked,
             ("tests/harness/stages/test_stage2.py::test_loss_leaves_out_unannotated_frames_inside_the_windows",),
             BDCA_PART),
    Mutation("windows_overwritten", "windowing and averaging",
             "overlapping windows overwritten instead of averaged (harness.stages.predict.average_windows)",
             _windows_overwritten,
             ("tests/harness/stages/test_predict.py::test_average_windows_is_the_mean_over_covering_windows",),
             BDCA_PART),
    Mutation("prediction_unnormalised", "normalisation",
             "prediction normalised with identity statistics, not the run's (harness.stages.predict.load_norm_stats)",
             _prediction_unnormalised, ("tests/harness/stages/test_stage2.py::test_train_stage2_end_to_end",),
             BDCA_PART),
    Mutation("writer_one_frame_off", "submission writer",
             "the submission writer one frame off (submissions.formats.build_submission_rows)",
             _writer_one_frame_off,
             ("tests/submissions/test_formats.py::test_submission_write_read_validate",), BDCA_PART),
    Mutation("stage1_frozen_whole", "freezing",
             "stage 1 frozen whole: every ViT block and the embedding (models.vit.VAViT.apply_freezing)",
             _stage1_frozen_whole, ("tests/models/test_vit.py::test_trainable_count_formula",
                                    "tests/models/test_vit.py::test_paper_freezing_of_vit_large"), STAGE1_PART),
    Mutation("mse_loss", "loss", "MSE instead of 1 - CCC as the stage-2 loss (harness.stages.stage2.stage2_loss)",
             _mse_loss, ("tests/harness/stages/test_stage2.py::test_loss_is_one_minus_ccc_on_an_imperfect_predictor",),
             BDCA_PART),
    Mutation("ccc_loss_is_mse", "loss", "models.losses.ccc_loss computes MSE (every stage's CCC loss)",
             _ccc_loss_is_mse, ("tests/models/test_losses.py::test_loss_on_an_imperfect_predictor_by_hand",),
             BDCA_PART),
    Mutation("validation_in_train_mode", "train/eval mode",
             "validation in train mode: engine.eval() a no-op (harness.train.loop._evaluate_and_keep_best)",
             _validation_in_train_mode, ("tests/harness/train/test_engine.py::test_validation_runs_in_eval_mode",),
             BDCA_PART),
    Mutation("lr_stuck", "schedule", "learning rate stuck at the warm-up start (harness.train.schedule.lr_at)",
             _lr_stuck,
             ("tests/harness/train/test_schedule.py::test_warmup_boundaries",), BDCA_PART),
    Mutation("last_epoch_kept", "best-epoch selection",
             "the last epoch kept instead of the best (harness.train.loop._evaluate_and_keep_best)", _last_epoch_kept,
             ("tests/harness/train/test_engine.py::test_the_best_epoch_is_kept_not_the_last",), BDCA_PART),
    Mutation("test_video_in_training", "fold assignment",
             "a test video (a validation video off fold 0) leaks into training (harness.data.splits.fold_split)",
             _test_video_in_training,
             ("tests/harness/experiments/test_folds.py::test_fold_zero_is_the_official_split",),
             BDCA_PART),
    Mutation("ensemble_weights_see_held_out", "ensemble weights",
             "nested ensemble weights searched on all parts, the held-out one too (submissions.ensemble.nested_search)",
             _ensemble_weights_see_held_out,
             ("tests/submissions/test_ensemble.py::test_nested_weights_never_see_their_own_part",
              "tests/harness/experiments/test_ensemble.py::test_leak_detector_weights_never_see_the_reported_frames")),
)  # fmt: skip
"""Every planted regression, one area at least each."""

BY_NAME = {m.name: m for m in MUTATIONS}


def mutation(name: str) -> Mutation:
    """The mutation called `name`.

    Raises:
        pytest.UsageError: no such mutation (the message lists them).
    """
    if name not in BY_NAME:
        raise pytest.UsageError(f"{ENV}={name}: no such mutation; known: {', '.join(BY_NAME)}")
    return BY_NAME[name]


# ---------------------------------------------------------------------------------------------------------------
# The plugin
# ---------------------------------------------------------------------------------------------------------------

_planted: list[pytest.MonkeyPatch] = []


def pytest_configure(config: pytest.Config) -> None:
    """Fail at start on an unknown `$HARNESS_MUTATION` (before any test runs)."""
    name = os.environ.get(ENV)
    if name:
        mutation(name)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Plant `$HARNESS_MUTATION` once every test module is imported; say so in the output."""
    name = os.environ.get(ENV)
    if not name:
        return
    mp = pytest.MonkeyPatch()
    mutation(name).apply(mp)
    _planted.append(mp)
    session.config.get_terminal_writer().line(f"planted mutation: {name}")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Undo what was planted."""
    while _planted:
        _planted.pop().undo()
