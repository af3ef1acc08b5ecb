"""VGGish 128-d audio embeddings, one per video frame: network, log-mel front end, PCA post-processing, loading.

Written from the released VGGish recipe (Hershey et al. 2017, AudioSet):
- front end: 16 kHz mono; 25 ms frames (400 samples) at a 10 ms hop (160), periodic Hann window, 512-point FFT
  magnitude; 64 mel bands between 125 and 7500 Hz with triangles laid out on the HTK mel scale
  (mel = 1127 ln(1 + f / 700)); log(mel + 0.01); 96 frames (0.96 s) x 64 bands per example;
- network (VGG "A"-like): conv64-pool-conv128-pool-conv256-conv256-pool-conv512-conv512-pool, then fully connected
  4096-4096-128, ReLU after every layer, 3x3 convolutions with padding 1, 2x2 max pooling;
- post-processing: PCA (eigenvectors (128, 128), means (128,)), clip to [-2, 2], quantise to 8 bits (0..255).

Weights come from disk only, in the layout the PyTorch ports use (torchvggish): `vggish-10086976.pth`, a state
dict with `features.{0,3,6,8,11,13}.{weight,bias}` (convolutions inside a Sequential of conv/ReLU/pool) and
`embeddings.{0,2,4}.{weight,bias}` (Linear 12288-4096, 4096-4096, 4096-128), and `vggish_pca_params-970ea276.pth`
with `pca_eigen_vectors` and `pca_means`. Those ports flatten the last feature map in TensorFlow's
(height, width, channels) order, which the first fully connected layer's weights assume; so does this module.

Per video frame: the embedding of the 0.96 s window centred on the frame. Log-mel frame j starts at j * 10 ms;
frame i of the video takes the 96 log-mel frames j_c - 48 .. j_c + 47 with j_c = round(t_i / 0.01), t_i = i / fps
or, for a variable-frame-rate video, the frame's presentation time (the same nearest-row rule as the openSMILE
features); frames outside the audio read as silence (log(0 + 0.01)).

Two outputs are offered: the raw 128-d embedding (post-ReLU float) and the post-processed one (PCA, clipped,
8-bit, returned as integer-valued float32 in [0, 255]). The default is the post-processed embedding, because that
is what the released recipe and AudioSet's published features are; pass `postprocess=False` for the raw one.
Without a weights file VGGish is simply off: `vggish_status` says so in words and the audio features lose 128 dims.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.errors import HarnessError
from preprocessing.timeline import frame_times, to_mono_16k

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 400  # 25 ms
HOP_SAMPLES = 160  # 10 ms
FFT_LENGTH = 512  # next power of two above the window
NUM_MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s of 10 ms frames
EMBEDDING_DIM = 128
PCA_CLIP = 2.0
QUANT_LEVELS = 255
WEIGHTS_FILE = "vggish-10086976.pth"
PCA_FILE = "vggish_pca_params-970ea276.pth"


class VGGishError(HarnessError):
    """VGGish weights or PCA parameters that cannot be used (missing file, wrong keys or shapes)."""


def vggish_files(path: str | Path) -> tuple[Path, Path]:
    """The weights file and the PCA file for a VGGish path.

    Args:
        path: the weights file itself (the PCA file is then looked for beside it) or a folder holding both under
            their released names `vggish-10086976.pth` and `vggish_pca_params-970ea276.pth`.
    """
    p = Path(path)
    if p.is_dir():
        return p / WEIGHTS_FILE, p / PCA_FILE
    return p, p.parent / PCA_FILE


def vggish_status(path: str | Path | None, postprocess: bool = True) -> tuple[bool, str]:
    """Whether VGGish can run, and a sentence saying why (for the CLI to print).

    Only checks that the files exist; their keys and shapes are checked when loading (`load_vggish`).

    Args:
        path: weights file or folder (see `vggish_files`), or None.
        postprocess: whether the PCA file is required as well.
    """
    off = "VGGish off: audio features are MFCC 39 + eGeMAPS 23 = 62 dims"
    if path is None:
        return False, f"{off} (no VGGish weights given; pass the folder holding {WEIGHTS_FILE} to switch it on)"
    weights, pca = vggish_files(path)
    if not weights.is_file():
        return False, f"{off} (weights file {weights} not found)"
    if postprocess and not pca.is_file():
        return False, (
            f"{off} (PCA parameters {pca} not found; they are needed for the released post-processed embedding, "
            "or ask for raw embeddings)"
        )
    kind = "PCA + 8-bit post-processed" if postprocess else "raw"
    return True, f"VGGish on: {weights} ({kind} 128-d embedding per frame; audio features are 190 dims)"


def _hertz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def mel_matrix(
    num_bands: int = NUM_MEL_BANDS,
    num_spectrum_bins: int = FFT_LENGTH // 2 + 1,
    sample_rate: int = SAMPLE_RATE,
    low_hz: float = MEL_MIN_HZ,
    high_hz: float = MEL_MAX_HZ,
) -> np.ndarray:
    """Mel weighting matrix of the released recipe: triangles that are linear on the mel scale.

    Args:
        num_bands: mel bands.
        num_spectrum_bins: FFT magnitude bins (fft_length // 2 + 1), spanning 0 .. sample_rate / 2.
        sample_rate: audio sample rate.
        low_hz: lower edge of the lowest band.
        high_hz: upper edge of the highest band.

    Returns:
        (num_spectrum_bins, num_bands) float64; the DC bin has weight 0.
    """
    if not 0.0 <= low_hz < high_hz <= sample_rate / 2:
        raise VGGishError(f"mel range must satisfy 0 <= low < high <= nyquist, got {low_hz}-{high_hz} Hz")
    bins_mel = _hertz_to_mel(np.linspace(0.0, sample_rate / 2, num_spectrum_bins))[:, None]  # (F, 1)
    edges = np.linspace(_hertz_to_mel(low_hz), _hertz_to_mel(high_hz), num_bands + 2)  # (M + 2,)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]  # each (M,)
    rising = (bins_mel - lower) / (center - lower)  # (F, M)
    falling = (upper - bins_mel) / (upper - center)  # (F, M)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


class LogMel(nn.Module):
    """Waveform -> VGGish log-mel frames.

    Args:
        sample_rate: expected input rate (the recipe's 16 kHz).
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE):
        super().__init__()
        self.sample_rate = sample_rate
        n = torch.arange(WINDOW_SAMPLES, dtype=torch.float64)
        # "periodic" Hann, as the recipe uses (not the symmetric one).
        self.register_buffer("window", (0.5 - 0.5 * torch.cos(2 * math.pi * n / WINDOW_SAMPLES)).float())
        self.register_buffer("mel", torch.from_numpy(mel_matrix(sample_rate=sample_rate)).float())

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(S,) samples -> (T, 64) log-mel frames; T = 1 + (S - 400) // 160 (0 when S < 400)."""
        (S,) = wave.shape
        if S < WINDOW_SAMPLES:
            return wave.new_zeros((0, NUM_MEL_BANDS))
        frames = wave.unfold(0, WINDOW_SAMPLES, HOP_SAMPLES)  # (T, 400)
        spectrum = torch.fft.rfft(frames * self.window, n=FFT_LENGTH).abs()  # (T, 257)
        return torch.log(spectrum @ self.mel + LOG_OFFSET)  # (T, 64)


class VGGish(nn.Module):
    """The VGGish network; parameter names follow the torchvggish state-dict layout.

    Args:
        final_relu: apply ReLU after the 128-d layer, as the torchvggish port's `embeddings` Sequential does.
    """

    def __init__(self, final_relu: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 1
        # "M" = 2x2 max pooling; indices of the convolutions come out as 0, 3, 6, 8, 11, 13.
        for spec in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if spec == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, int(spec), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                in_ch = int(spec)
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 4 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, EMBEDDING_DIM),
            nn.ReLU(inplace=True) if final_relu else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 96, 64) log-mel examples -> (B, 128) embeddings."""
        B, T, F = x.shape
        if (T, F) != (EXAMPLE_FRAMES, NUM_MEL_BANDS):
            raise VGGishError(f"VGGish takes (B, {EXAMPLE_FRAMES}, {NUM_MEL_BANDS}) log-mel examples, got {(B, T, F)}")
        h = self.features(x.unsqueeze(1))  # (B, 512, 6, 4)
        # Flatten as TensorFlow did (height, width, channels): the released fc weights expect this order.
        h = h.permute(0, 2, 3, 1).reshape(B, -1)  # (B, 6 * 4 * 512)
        return self.embeddings(h)  # (B, 128)


class PCAPostprocessor(nn.Module):
    """PCA, clipping to [-2, 2] and 8-bit quantisation, as the released post-processing does."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("pca_eigen_vectors", torch.eye(EMBEDDING_DIM))
        self.register_buffer("pca_means", torch.zeros(EMBEDDING_DIM))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """(B, 128) raw embeddings -> (B, 128) integer-valued float32 in [0, 255]."""
        B, D = emb.shape
        if D != EMBEDDING_DIM:
            raise VGGishError(f"PCA post-processing takes (B, {EMBEDDING_DIM}) embeddings, got {(B, D)}")
        projected = (emb - self.pca_means) @ self.pca_eigen_vectors.T  # (B, 128)
        clipped = projected.clamp(-PCA_CLIP, PCA_CLIP)
        # The release casts the scaled values to uint8, i.e. truncates; they are >= 0, so truncation is floor.
        return torch.floor((clipped + PCA_CLIP) * (QUANT_LEVELS / (2 * PCA_CLIP)))


def flops_per_example(model: VGGish | None = None) -> int:
    """Forward FLOPs of one 96 x 64 example (2 x multiply-accumulates of convolutions and linear layers).

    Args:
        model: the network to count (a fresh `VGGish()` when None).
    """
    model = model or VGGish()
    h, w, total = EXAMPLE_FRAMES, NUM_MEL_BANDS, 0
    for layer in model.features:
        if isinstance(layer, nn.Conv2d):
            k = layer.kernel_size[0] * layer.kernel_size[1]
            total += 2 * layer.in_channels * layer.out_channels * k * h * w  # padding 1 keeps h, w
        elif isinstance(layer, nn.MaxPool2d):
            h, w = h // 2, w // 2
    total += sum(2 * lin.in_features * lin.out_features for lin in model.embeddings if isinstance(lin, nn.Linear))
    return total


def _read_state(path: Path) -> Mapping[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise VGGishError(f"{path}: file not found") from exc
    except Exception as exc:  # torch raises several types for a non-checkpoint file
        raise VGGishError(f"{path}: not a loadable PyTorch state dict ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VGGishError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return state


def _check_state(path: Path, state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(state))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected)}")
        if wrong:
            parts.append(f"shape mismatches: {'; '.join(wrong)}")
        raise VGGishError(f"{path}: not a VGGish state dict in the torchvggish layout ({'; '.join(parts)})")


def load_pca(path: str | Path) -> PCAPostprocessor:
    """Read `pca_eigen_vectors` (128, 128) and `pca_means` ((128,) or the port's (128, 1)) into a post-processor.

    Args:
        path: the PCA parameters file.
    """
    path = Path(path)
    state = dict(_read_state(path))
    if "pca_means" in state and tuple(state["pca_means"].shape) == (EMBEDDING_DIM, 1):
        state["pca_means"] = state["pca_means"].reshape(EMBEDDING_DIM)
    post = PCAPostprocessor()
    _check_state(path, state, post.state_dict())
    post.load_state_dict({k: v.float() for k, v in state.items()})
    return post


class VGGishExtractor:
    """Log-mel front end + network (+ PCA post-processing): waveform -> one embedding per video frame.

    Args:
        model: the network with its weights loaded.
        postprocessor: the PCA post-processor, or None for raw embeddings.
        device: where to run ("cpu", "cuda", ...).
        batch_size: examples per forward pass (bounds memory: each example is 96 x 64 floats plus activations).
    """

    def __init__(
        self,
        model: VGGish,
        postprocessor: PCAPostprocessor | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
    ):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.postprocessor = None if postprocessor is None else postprocessor.to(self.device).eval()
        self.frontend = LogMel().to(self.device)
        self.batch_size = batch_size

    @property
    def postprocess(self) -> bool:
        """Whether outputs are the PCA + 8-bit post-processed embeddings."""
        return self.postprocessor is not None

    @torch.inference_mode()
    def embed_examples(self, examples: torch.Tensor) -> np.ndarray:
        """(B, 96, 64) log-mel examples -> (B, 128) float32 embeddings (post-processed when configured)."""
        B = examples.shape[0]
        outs = []
        for start in range(0, B, self.batch_size):
            emb = self.model(examples[start : start + self.batch_size].to(self.device))  # (b, 128)
            if self.postprocessor is not None:
                emb = self.postprocessor(emb)
            outs.append(emb.float().cpu())
        return torch.cat(outs).numpy() if outs else np.zeros((0, EMBEDDING_DIM), np.float32)

    @torch.inference_mode()
    def embed_frames(
        self, wave: np.ndarray, sr: int, n_frames: int, fps: float, frame_times_s: np.ndarray | None = None
    ) -> np.ndarray:
        """One embedding per video frame, from the 0.96 s window centred on the frame.

        Args:
            wave: mono samples in [-1, 1] at `sr` (resampled to 16 kHz when needed).
            sr: sample rate.
            n_frames: number of video frames.
            fps: video frame rate.
            frame_times_s: each frame's presentation time in seconds (variable frame rate), or None for i / fps.

        Returns:
            (n_frames, 128) float32.
        """
        wave16k = torch.from_numpy(np.ascontiguousarray(to_mono_16k(wave, sr))).to(self.device)
        logmel = self.frontend(wave16k)  # (T, 64)
        half = EXAMPLE_FRAMES // 2
        silence = math.log(LOG_OFFSET)
        padded = torch.full((logmel.shape[0] + EXAMPLE_FRAMES, NUM_MEL_BANDS), silence, device=self.device)
        padded[half : half + logmel.shape[0]] = logmel  # (T + 96, 64): 48 frames of silence before, 48 after
        centres = example_centres(n_frames, fps, logmel.shape[0], frame_times_s)  # (N,)
        outs = []
        offsets = torch.arange(EXAMPLE_FRAMES, device=self.device)
        for start in range(0, n_frames, self.batch_size):
            idx = torch.from_numpy(centres[start : start + self.batch_size]).to(self.device)
            # Window j_c - 48 .. j_c + 47 in the unpadded frames is j_c .. j_c + 95 in `padded`.
            examples = padded[idx[:, None] + offsets]  # (b, 96, 64)
            outs.append(self.embed_examples(examples))
        return np.concatenate(outs).astype(np.float32) if outs else np.zeros((0, EMBEDDING_DIM), np.float32)


def example_centres(n_frames: int, fps: float, n_logmel: int, frame_times_s: np.ndarray | None = None) -> np.ndarray:
    """Centre log-mel frame of each video frame's window: round(t_i / 0.01), kept inside the padded range.

    Args:
        n_frames: number of video frames.
        fps: video frame rate: frame i is at t_i = i / fps, unless `frame_times_s` is given.
        n_logmel: number of log-mel frames of the audio.
        frame_times_s: each frame's presentation time t_i in seconds (variable frame rate), or None.

    Returns:
        (n_frames,) int64 in [0, n_logmel] (n_logmel means "all silence after the audio" for very long videos).
    """
    centres = np.rint(frame_times(n_frames, fps, frame_times_s) / (HOP_SAMPLES / SAMPLE_RATE))
    # Past the end of the audio the window would be pure padding; clamp so indexing stays inside the buffer.
    return np.clip(centres, 0, max(n_logmel, 0)).astype(np.int64)


def load_vggish(
    path: str | Path, postprocess: bool = True, device: str | torch.device = "cpu", batch_size: int = 64
) -> VGGishExtractor:
    """Load VGGish weights (and PCA parameters) from disk in the torchvggish layout.

    Args:
        path: weights file or folder (see `vggish_files`).
        postprocess: load the PCA file too and return post-processed embeddings.
        device: where to run.
        batch_size: examples per forward pass.
    """
    weights, pca = vggish_files(path)
    if not weights.is_file():
        raise VGGishError(f"{weights}: VGGish weights file not found")
    state = _read_state(weights)
    model = VGGish()
    _check_state(weights, state, model.state_dict())
    model.load_state_dict({k: v.float() for k, v in state.items()})
    post = None
    if postprocess:
        if not pca.is_file():
            raise VGGishError(f"{pca}: VGGish PCA parameters file not found (needed for post-processed embeddings)")
        post = load_pca(pca)
    return VGGishExtractor(model, post, device=device, batch_size=batch_size)


def save_random_weights(folder: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """Write randomly initialised weights and an orthonormal PCA in the released layout (for tests and benches).

    Args:
        folder: where to write `vggish-10086976.pth` and `vggish_pca_params-970ea276.pth`.
        seed: torch seed.
    """
    from core.atomic import atomic_open

    folder = Path(folder)
    torch.manual_seed(seed)
    model = VGGish()
    q, _ = torch.linalg.qr(torch.randn(EMBEDDING_DIM, EMBEDDING_DIM))
    pca = {"pca_eigen_vectors": q.contiguous(), "pca_means": 0.1 * torch.randn(EMBEDDING_DIM)}
    weights_path, pca_path = folder / WEIGHTS_FILE, folder / PCA_FILE
    with atomic_open(weights_path, "wb") as fh:
        torch.save(model.state_dict(), fh)
    with atomic_open(pca_path, "wb") as fh:
        torch.save(pca, fh)
    return weights_path, pca_path
