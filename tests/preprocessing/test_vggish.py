"""VGGish: log-mel front end, network layout, weight loading, PCA post-processing, per-frame windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import get_window

from preprocessing.vggish import (
    EXAMPLE_FRAMES,
    LOG_OFFSET,
    PCA_FILE,
    WEIGHTS_FILE,
    LogMel,
    PCAPostprocessor,
    VGGish,
    VGGishError,
    example_centres,
    flops_per_example,
    load_pca,
    load_vggish,
    mel_matrix,
    save_random_weights,
    vggish_status,
)

TORCHVGGISH_KEYS = {
    f"{part}.{i}.{p}"
    for part, idx in (("features", (0, 3, 6, 8, 11, 13)), ("embeddings", (0, 2, 4)))
    for i in idx
    for p in ("weight", "bias")
}


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("vggish")
    save_random_weights(folder, seed=1)
    return folder


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    wave = sum(np.sin(2 * np.pi * f * t) for f in (220, 660, 1500)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
    return (0.2 * wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# front end
# ---------------------------------------------------------------------------------------------------------------


def test_mel_matrix_follows_the_recipe() -> None:
    m = mel_matrix()
    assert m.shape == (257, 64)
    assert (m >= 0).all() and m.max() <= 1.0
    assert not m[0].any()  # the DC bin is excluded
    freqs = np.linspace(0, 8000, 257)
    peaks = freqs[m.argmax(axis=0)]
    assert np.all(np.diff(peaks) >= 0)
    assert 110 <= peaks[0] <= 200 and 7000 <= peaks[-1] <= 7500
    assert not m[freqs > 7500].any() and not m[freqs < 125].any()


def test_logmel_matches_a_numpy_reference() -> None:
    wave = _speechlike(0.5, seed=2)
    got = LogMel()(torch.from_numpy(wave)).numpy()
    n = 1 + (wave.size - 400) // 160
    frames = np.stack([wave[i * 160 : i * 160 + 400] for i in range(n)]).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(frames * get_window("hann", 400, fftbins=True), n=512))
    expected = np.log(spectrum @ mel_matrix() + LOG_OFFSET)
    assert got.shape == (n, 64)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_logmel_edge_cases() -> None:
    front = LogMel()
    assert front(torch.zeros(399)).shape == (0, 64)
    silent = front(torch.zeros(16000))
    assert silent.shape == (98, 64)
    np.testing.assert_allclose(silent.numpy(), np.log(LOG_OFFSET), rtol=1e-6)
    t = torch.arange(16000) / 16000
    tone = front(0.5 * torch.sin(2 * torch.pi * 1000 * t))
    band = int(tone.mean(0).argmax())
    centre_hz = 700 * (np.exp(np.linspace(1127 * np.log1p(125 / 700), 1127 * np.log1p(7500 / 700), 66)[band + 1]
                              / 1127) - 1)
    assert abs(centre_hz - 1000) < 60


# ---------------------------------------------------------------------------------------------------------------
# network and loading
# ---------------------------------------------------------------------------------------------------------------


def test_network_has_the_torchvggish_layout() -> None:
    model = VGGish()
    state = model.state_dict()
    assert set(state) == TORCHVGGISH_KEYS
    assert state["features.0.weight"].shape == (64, 1, 3, 3)
    assert state["features.13.weight"].shape == (512, 512, 3, 3)
    assert state["embeddings.0.weight"].shape == (4096, 512 * 4 * 6)
    assert state["embeddings.4.weight"].shape == (128, 4096)
    seen: dict[str, torch.Tensor] = {}

    def keep_input(module: torch.nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        seen["flat"] = inp[0].clone()

    model.embeddings.register_forward_hook(keep_input)
    x = torch.randn(2, 96, 64)
    out = model(x)
    assert out.shape == (2, 128)
    # the first fc layer sees the last feature map flattened in (height, width, channels) order, as TF did
    fmap = model.features(x.unsqueeze(1))
    assert fmap.shape == (2, 512, 6, 4)
    torch.testing.assert_close(seen["flat"], fmap.permute(0, 2, 3, 1).reshape(2, -1))
    with pytest.raises(VGGishError, match="96, 64"):
        model(torch.randn(1, 95, 64))


def test_load_and_embed_per_frame(weights_dir: Path) -> None:
    extractor = load_vggish(weights_dir)
    assert extractor.postprocess
    wave = _speechlike(1.2)
    emb = extractor.embed_frames(wave, 16000, 30, 25.0)
    assert emb.shape == (30, 128) and emb.dtype == np.float32
    assert emb.min() >= 0 and emb.max() <= 255
    np.testing.assert_array_equal(emb, np.floor(emb))  # 8-bit values
    raw = load_vggish(weights_dir / WEIGHTS_FILE, postprocess=False).embed_frames(wave, 16000, 30, 25.0)
    assert raw.shape == (30, 128) and raw.min() >= 0  # the port's final ReLU
    assert np.ptp(raw, axis=0).max() > 0  # windows differ along the clip


def test_frame_windows_are_centred_and_padded_with_silence(weights_dir: Path) -> None:
    extractor = load_vggish(weights_dir, postprocess=False)
    wave = _speechlike(2.0, seed=5)
    logmel = extractor.frontend(torch.from_numpy(wave))  # (T, 64)
    frames = extractor.embed_frames(wave, 16000, 50, 25.0)
    half = EXAMPLE_FRAMES // 2
    c = 25 * 4  # frame 25 at 1.0 s -> log-mel frame 100
    mid = extractor.embed_examples(logmel[c - half : c + half][None])
    np.testing.assert_allclose(frames[25], mid[0], rtol=1e-4, atol=1e-6)
    first = torch.cat([torch.full((half, 64), float(np.log(LOG_OFFSET))), logmel[:half]])[None]
    np.testing.assert_allclose(frames[0], extractor.embed_examples(first)[0], rtol=1e-4, atol=1e-6)


def test_example_centres() -> None:
    assert example_centres(5, 25.0, 1000).tolist() == [0, 4, 8, 12, 16]
    assert example_centres(4, 30.0, 1000).tolist() == [0, 3, 7, 10]
    assert example_centres(3, 1.0, 150).tolist() == [0, 100, 150]  # past the audio: clamped


def test_pca_postprocessing_values() -> None:
    post = PCAPostprocessor()
    post.pca_eigen_vectors.copy_(10 * torch.eye(128))
    emb = torch.zeros(1, 128)
    emb[0, :5] = torch.tensor([-1.0, -0.2, 0.0, 0.1, 1.0])
    out = post(emb)[0, :5]
    # 10x -> [-10, -2, 0, 1, 10], clipped to [-2, 2], scaled by 255/4 and truncated like the release's uint8 cast
    assert out.tolist() == [0.0, 0.0, 127.0, 191.0, 255.0]
    post.pca_means.fill_(0.5)
    assert post(torch.full((1, 128), 0.5))[0, 0].item() == 127.0


def test_pca_file_with_column_means(tmp_path: Path) -> None:
    path = tmp_path / PCA_FILE
    torch.save({"pca_eigen_vectors": torch.eye(128), "pca_means": torch.arange(128.0).reshape(128, 1)}, path)
    post = load_pca(path)
    assert post.pca_means.shape == (128,) and post.pca_means[5].item() == 5.0


def _save_state(path: Path, state: dict[str, torch.Tensor]) -> Path:
    torch.save(state, path)
    return path


def test_missing_unexpected_and_misshaped_keys_are_named(tmp_path: Path) -> None:
    model = VGGish()
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    # tiny stand-in tensors keep the file small; every wrong shape is reported too
    state = {k: torch.zeros(1) for k in shapes if k != "embeddings.4.bias"}
    state["embeddings.6.weight"] = torch.zeros(1)
    path = _save_state(tmp_path / WEIGHTS_FILE, state)
    with pytest.raises(VGGishError) as err:
        load_vggish(path, postprocess=False)
    msg = str(err.value)
    assert "missing keys: embeddings.4.bias" in msg
    assert "unexpected keys: embeddings.6.weight" in msg
    assert "features.0.weight: file (1,) vs model (64, 1, 3, 3)" in msg
    assert str(path) in msg


def test_bad_pca_file_is_named(tmp_path: Path) -> None:
    path = _save_state(tmp_path / PCA_FILE, {"pca_eigen_vectors": torch.eye(64)})
    with pytest.raises(VGGishError) as err:
        load_pca(path)
    assert "missing keys: pca_means" in str(err.value)
    assert "pca_eigen_vectors: file (64, 64) vs model (128, 128)" in str(err.value)


def test_not_a_state_dict(tmp_path: Path) -> None:
    garbage = tmp_path / WEIGHTS_FILE
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(VGGishError, match="not a loadable PyTorch state dict"):
        load_vggish(garbage, postprocess=False)
    tensor_file = _save_state(tmp_path / "t.pth", torch.zeros(3))  # type: ignore[arg-type]
    with pytest.raises(VGGishError, match="expected a state dict"):
        load_vggish(tensor_file, postprocess=False)


def test_status_messages(tmp_path: Path, weights_dir: Path) -> None:
    ok, msg = vggish_status(None)
    assert not ok and "VGGish off" in msg and "62 dims" in msg
    ok, msg = vggish_status(tmp_path / "nope")
    assert not ok and "not found" in msg
    lonely = tmp_path / "only_weights"
    lonely.mkdir()
    (lonely / WEIGHTS_FILE).symlink_to(weights_dir / WEIGHTS_FILE)
    ok, msg = vggish_status(lonely)
    assert not ok and PCA_FILE in msg
    assert vggish_status(lonely, postprocess=False)[0]
    ok, msg = vggish_status(weights_dir)
    assert ok and "VGGish on" in msg and "190 dims" in msg
    with pytest.raises(VGGishError, match="PCA parameters file not found"):
        load_vggish(lonely)


def test_flops_per_example_by_hand() -> None:
    convs = [(1, 64, 96 * 64), (64, 128, 48 * 32), (128, 256, 24 * 16), (256, 256, 24 * 16), (256, 512, 12 * 8),
             (512, 512, 12 * 8)]
    linears = [(512 * 4 * 6, 4096), (4096, 4096), (4096, 128)]
    expected = sum(2 * ci * co * 9 * hw for ci, co, hw in convs) + sum(2 * i * o for i, o in linears)
    assert flops_per_example() == expected
