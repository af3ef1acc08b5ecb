"""The registry (names, configs, overrides), the analytic FLOP counts against torch's counter, and `harness models`."""

from __future__ import annotations

import dataclasses

import pytest
import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.cli import main
from models import (
    FUSIONS,
    MAEConfig,
    ModelConfigError,
    TemporalConfig,
    ViTConfig,
    count_flops,
    count_params,
    count_train_flops,
    create_model,
    get_config,
    list_models,
    stage2_models,
    summarize_model,
)
from models.zoo import ZOO

SMALL = {"visual_dim": 24, "audio_dim": 10, "tcn_channels": 16, "num_heads": 2, "dim_feedforward": 32,
         "head_hidden": 8}  # fmt: skip


def _sdpa_flops(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    """QK^T and AV products of torch's CPU flash-attention kernel (which FlopCounterMode does not count)."""
    *batch, Lq, E = q_shape
    Lk, Ev = k_shape[-2], v_shape[-1]
    n = 1
    for b in batch:
        n *= b
    return 2 * n * Lq * Lk * E + 2 * n * Lq * Lk * Ev


def _measured(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops}
    # Train mode: the eval fast path of nn.TransformerEncoderLayer is one fused op the counter cannot see.
    model.train()
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(*inputs)
    return counter.get_total_flops()


def _sdpa_backward_flops(grad_shape, q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    """The attention backward's products: twice the forward's (dV, dP, dQ, dK), not the kernel's recomputation."""
    return 2 * _sdpa_flops(q_shape, k_shape, v_shape)


def _measured_step(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """Forward + backward FLOPs of one step, counted by torch."""
    mapping = {
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops,
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_backward_flops,
    }
    model.train()
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(*inputs).sum().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("name", FUSIONS)
def test_temporal_train_flops_match_torch_counter(name: str) -> None:
    model = create_model(name, **{**SMALL, "tcn_dropout": 0.0, "dropout": 0.0})
    v, a = torch.randn(2, 13, 24), torch.randn(2, 13, 10)
    assert count_train_flops(model, T=13, batch=2) == _measured_step(model, v, a)


@pytest.mark.parametrize(("frozen", "freeze_embedding"), [(1, True), (0, True), (2, True), (0, False)])
def test_vit_train_flops_match_torch_counter(frozen: int, freeze_embedding: bool) -> None:
    vit = create_model("vit_tiny_patch16", img_size=48, embed_dim=32, depth=2, num_heads=2, frozen_blocks=frozen,
                       freeze_embedding=freeze_embedding)  # fmt: skip
    assert count_train_flops(vit, T=3) == _measured_step(vit, torch.randn(3, 3, 48, 48))


def test_registered_names() -> None:
    vits = [f"vit_{s}_patch16" for s in ("tiny", "small", "base", "large")]
    assert list_models("vit") == vits
    assert list_models("mae") == [f"mae_{n}" for n in vits]
    assert list_models("temporal") == list(FUSIONS)
    assert list_models("resnet") == ["resnet50_va"]
    assert list_models("zoo") == list(ZOO) == ["lfan", "jca", "rjca", "dca", "mult", "mamba_va", "tcn_transformer"]
    assert stage2_models() == [*FUSIONS, *ZOO]
    assert set(list_models()) == set(vits) | {f"mae_{n}" for n in vits} | set(FUSIONS) | set(ZOO) | {"resnet50_va"}


@pytest.mark.parametrize(
    ("name", "dims"),
    [("vit_tiny_patch16", (192, 12, 3)), ("vit_small_patch16", (384, 12, 6)), ("vit_base_patch16", (768, 12, 12)),
     ("vit_large_patch16", (1024, 24, 16)), ("mae_vit_large_patch16", (1024, 24, 16))],
)  # fmt: skip
def test_vit_sizes(name: str, dims: tuple[int, int, int]) -> None:
    c = get_config(name)
    assert (c.embed_dim, c.depth, c.num_heads) == dims
    assert (c.img_size, c.patch_size) == (224, 16)


def test_overrides_replace_fields_and_configs_are_frozen() -> None:
    c = get_config("bdca", audio_dim=62, tcn_dilations=[1, 2])
    assert isinstance(c, TemporalConfig) and c.audio_dim == 62 and c.tcn_dilations == (1, 2)
    assert get_config("bdca").audio_dim == 190  # the registered default is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.audio_dim = 3  # type: ignore[misc]
    assert isinstance(get_config("mae_vit_tiny_patch16"), MAEConfig)
    assert type(get_config("mae_vit_tiny_patch16").encoder_config()) is ViTConfig


def test_unknown_override_and_name_are_clear_errors() -> None:
    with pytest.raises(ModelConfigError, match=r"no field\(s\) depthh.*valid fields: .*depth"):
        create_model("vit_tiny_patch16", depthh=3)
    with pytest.raises(ModelConfigError, match=r"unknown model 'vit_huge'.*bdca"):
        create_model("vit_huge")


@pytest.mark.parametrize(
    "bad", [{"tcn_kernel": 4}, {"fusion": "sum"}, {"temperature": 0.0}, {"num_heads": 3}, {"tcn_dilations": ()}]
)
def test_invalid_temporal_values(bad: dict) -> None:
    with pytest.raises(ModelConfigError):
        get_config("bdca", **bad)


@pytest.mark.parametrize("name", FUSIONS)
def test_temporal_flops_match_torch_counter(name: str) -> None:
    model = create_model(name, use_sdpa=False, **SMALL)
    v, a = torch.randn(2, 13, 24), torch.randn(2, 13, 10)
    assert count_flops(model, T=13, batch=2) == _measured(model, v, a)
    projected = create_model(name, d_model=20, **{**SMALL, "num_heads": 4})
    assert count_flops(projected, T=13, batch=2) == _measured(projected, v, a)


def test_vit_and_mae_flops_match_torch_counter() -> None:
    vit = create_model("vit_tiny_patch16", img_size=48, embed_dim=32, depth=2, num_heads=2)
    assert count_flops(vit, T=3) == _measured(vit, torch.randn(3, 3, 48, 48))
    mae = create_model(
        "mae_vit_tiny_patch16", img_size=48, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=16,
        decoder_depth=1, decoder_num_heads=2,
    )  # fmt: skip
    assert count_flops(mae, T=2) == _measured(mae, torch.randn(2, 3, 48, 48))


def test_param_counts_against_timm() -> None:
    with torch.device("meta"):
        ref = timm.create_model("vit_large_patch16_224", pretrained=False, num_classes=0)
        ours = create_model("vit_large_patch16")
    timm_params = sum(p.numel() for p in ref.parameters())
    # timm learns its position embedding (a parameter); ours is a fixed buffer. We add a 2-output head.
    assert count_params(ours).total == timm_params - 197 * 1024 + (1024 * 2 + 2)


def test_summaries_at_paper_dimensions() -> None:
    bdca = summarize_model("bdca")
    assert bdca.per == "300-frame window" and bdca.params == bdca.trainable
    assert bdca.gflops == pytest.approx(count_flops("bdca", T=300) / 1e9)
    vit_l = summarize_model("vit_large_patch16")
    assert vit_l.per == "image" and vit_l.trainable < vit_l.params
    # ViT-L/16 at 224 px: about 61.6 G multiply-accumulates per image.
    assert vit_l.gflops == pytest.approx(123.1, rel=0.01)
    concat, no_dw = summarize_model("concat"), summarize_model("bdca_no_dw")
    assert concat.gflops < no_dw.gflops < bdca.gflops
    assert summarize_model("bdca", audio_dim=62).params < bdca.params


def test_harness_models_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--kind", "temporal", "--audio-dim", "62"]) == 0
    out = capsys.readouterr().out
    for name in FUSIONS:
        assert name in out
    assert "vit_large_patch16" not in out
    assert f"{count_params(create_model('bdca', audio_dim=62)).total:,}" in out
    assert main(["models", "vit_tiny_patch16"]) == 0
    assert "vit_tiny_patch16" in capsys.readouterr().out
    assert main(["models", "--kind", "zoo", "--frames", "50"]) == 0
    out = capsys.readouterr().out
    for name, entry in ZOO.items():
        assert name in out and entry.citation.split()[0] in out
    assert main(["models", "nope"]) == 2
    assert "unknown model" in capsys.readouterr().err
