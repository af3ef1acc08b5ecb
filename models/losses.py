"""The CCC training loss in torch, the same formula as the challenge's numpy scorer (`submissions.metrics.ccc`).

    ccc = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2)

with population (1/N) moments over the valid frames (Lin 1989; the organisers' convention; torchmetrics' n-1
differs). The loss is 1 - mean(CCC_V, CCC_A) over all valid frames of the batch flattened together, which is what
the challenge scores (one CCC over all frames, not a mean of per-window CCCs).
"""

from __future__ import annotations

import torch


def ccc(truth: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 0.0) -> torch.Tensor:
    """Concordance correlation coefficient over all (valid) elements, as a 0-d tensor.

    Args:
        truth: ground truth, any shape (flattened).
        pred: predictions, same shape.
        mask: bool, same shape, True for elements that count; entries outside it may hold anything (even NaN).
        eps: added to the denominator; 0 gives exactly the scorer's value (NaN when both series are constant and
            equal, or when no element is valid), a small eps keeps training finite on constant batches.
    """
    if truth.shape != pred.shape:
        raise ValueError(f"ccc: truth {tuple(truth.shape)} and pred {tuple(pred.shape)} differ in shape")
    x, y = truth.reshape(-1), pred.reshape(-1)  # (N,)
    if mask is None:
        w = torch.ones_like(x)
    else:
        if mask.shape != truth.shape:
            raise ValueError(f"ccc: mask {tuple(mask.shape)} and truth {tuple(truth.shape)} differ in shape")
        keep = mask.reshape(-1)  # (N,)
        w = keep.to(x.dtype)
        # where(), not multiplication: masked entries may be -5 placeholders or NaN.
        x = torch.where(keep, x, torch.zeros_like(x))
        y = torch.where(keep, y, torch.zeros_like(y))
    n = w.sum()
    mx, my = (w * x).sum() / n, (w * y).sum() / n
    dx, dy = (x - mx) * w, (y - my) * w
    vx, vy = (dx * dx).sum() / n, (dy * dy).sum() / n
    cov = (dx * dy).sum() / n
    return 2.0 * cov / (vx + vy + (mx - my) ** 2 + eps)


def va_ccc(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 0.0
) -> torch.Tensor:
    """(CCC_V, CCC_A) over all valid frames: pred and target (..., 2), mask (...) -> (2,).

    Args:
        pred: predictions, (B, T, 2) or (N, 2).
        target: labels, same shape.
        mask: bool of shape pred.shape[:-1], True for frames that count.
        eps: see `ccc`.
    """
    if pred.shape != target.shape or pred.shape[-1] != 2:
        raise ValueError(f"va_ccc: pred {tuple(pred.shape)} and target {tuple(target.shape)} must be (..., 2)")
    p, t = pred.reshape(-1, 2), target.reshape(-1, 2)  # (N, 2)
    m = None if mask is None else mask.reshape(-1)  # (N,)
    return torch.stack([ccc(t[:, i], p[:, i], m, eps) for i in range(2)])  # (2,)


def ccc_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1.0e-8
) -> torch.Tensor:
    """1 - (CCC_V + CCC_A) / 2 over all valid frames flattened (0-d tensor).

    Args:
        pred: predictions, (B, T, 2) or (N, 2).
        target: labels, same shape.
        mask: bool of shape pred.shape[:-1], True for frames that count (annotated, not padding).
        eps: added to each CCC's denominator so constant batches give a finite loss.
    """
    return 1.0 - va_ccc(pred, target, mask, eps).mean()
