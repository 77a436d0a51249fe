"""Knowledge control: steer each reverse-diffusion step toward a physical target.

PreDiff's knowledge alignment shifts the mean of every reverse step,

    mu'(z_t, t) = mu(z_t, t) - sigma_t * guide_scale * grad_{z_t} || A(z_t, t) - target ||_2,

where ``A`` is an alignment network that predicts, from the noisy latent, a quantity of the
future (PreDiff: the mean intensity of each future frame, averaged here over the frames) and
``sigma_t`` is the posterior standard deviation of step ``t``. The guidance is a separate object
handed to a sampler (:mod:`xearthformer.diffusion.samplers`), which calls
:meth:`KnowledgeControl.shift_mean` once per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import torch
from torch import Tensor

from xearthformer.nn._validation import ConfigError

__all__ = ["Guidance", "KnowledgeControl"]

Norm = Literal["per_sample", "batch"]


class Guidance(Protocol):
    """What a sampler needs from a guidance object."""

    def shift_mean(self, mean: Tensor, z_t: Tensor, t: Tensor, sigma: Tensor) -> Tensor:
        """Return the guided mean of the step ``z_t -> z_{t-1}``."""
        ...


class KnowledgeControl:
    """Mean shift ``-guide_scale * sigma_t * grad ||A(z_t, t) - target||`` (PreDiff alignment).

    Parameters
    ----------
    alignment : callable
        ``A = alignment(z_t, t)`` with ``z_t: "b t h w c"``, ``t: "b"``, returning per-frame
        predictions ``"b t k"`` (averaged over ``t`` here, as the official code does) or already
        reduced ``"b k"``. It must be differentiable in ``z_t``; it is called under
        ``torch.enable_grad()`` with a detached ``z_t``. Put a network in eval mode first.
    target : Tensor or float
        The anticipated value: ``"b k"``, ``"b"`` (for ``k = 1``) or a scalar, broadcast over
        the batch.
    guide_scale : float
        lambda of the paper; 50 in PreDiff's released SEVIR-LR configuration.
    norm : {"per_sample", "batch"}
        ``"per_sample"`` (default) takes one L2 norm per batch member, so the gradient for a
        member depends on that member alone. ``"batch"`` reproduces the official code: ONE L2
        norm over the whole ``"b k"`` difference. With it, a member's shift is divided by the
        violation of the whole batch, so the guidance a forecast receives changes with which and
        how many other forecasts (ensemble members, initial dates, scenarios) share its batch:
        results would depend on the batch size. Use ``"batch"`` only to reproduce the official
        numbers; for batch size 1 both are identical.

    Examples
    --------
    A toy alignment "network": the mean of the latent over every axis but the batch.

    >>> align = lambda z, t: z.mean(dim=(1, 2, 3, 4))[:, None]        # "b t h w c" -> "b 1"
    >>> control = KnowledgeControl(align, target=1.0, guide_scale=2.0)
    >>> z = torch.zeros(2, 1, 1, 1, 2)
    >>> t = torch.tensor([5, 5])
    >>> control.mean_shift(z, t)[0].flatten().tolist()    # 2 * d|mean(z) - 1| / dz = 2 * (-1/2)
    [-1.0, -1.0]
    >>> control.shift_mean(torch.zeros_like(z), z, t, sigma=torch.full((2, 1, 1, 1, 1), 0.5)).max()
    tensor(0.5000)
    """

    def __init__(
        self,
        alignment: Callable[[Tensor, Tensor], Tensor],
        target: Tensor | float,
        *,
        guide_scale: float = 50.0,
        norm: Norm = "per_sample",
    ):
        if not callable(alignment):
            raise ConfigError(f"alignment must be callable as alignment(z_t, t), got {alignment!r}")
        if norm not in ("per_sample", "batch"):
            raise ConfigError(f"norm must be 'per_sample' or 'batch', got {norm!r}")
        self.alignment = alignment
        self.target = target
        self.guide_scale = float(guide_scale)
        self.norm: Norm = norm

    def prediction(self, z_t: Tensor, t: Tensor) -> Tensor:
        """``A(z_t, t)`` reduced to ``"b k"`` (mean over the frame axis of ``"b t k"``)."""
        pred = self.alignment(z_t, t)
        if pred.ndim == 3:
            pred = pred.mean(dim=1)
        if pred.ndim != 2 or pred.shape[0] != z_t.shape[0]:
            raise ConfigError(
                "alignment(z_t, t) must return 'b t k' or 'b k' with b = "
                f"{z_t.shape[0]}, got shape {tuple(pred.shape)}"
            )
        return pred

    def _target_like(self, pred: Tensor) -> Tensor:
        target = torch.as_tensor(self.target, dtype=pred.dtype, device=pred.device)
        if target.ndim == 1 and pred.shape[1] == 1:
            target = target[:, None]
        try:
            return torch.broadcast_to(target, pred.shape)
        except RuntimeError:
            raise ConfigError(
                f"target of shape {tuple(target.shape)} cannot be broadcast to the alignment "
                f"prediction 'b k' = {tuple(pred.shape)}"
            ) from None

    def violation(self, z_t: Tensor, t: Tensor) -> Tensor:
        """``||A(z_t, t) - target||_2``: shape ``"b"`` (per-sample) or ``()`` (batch)."""
        pred = self.prediction(z_t, t)
        difference = pred - self._target_like(pred)
        if self.norm == "batch":
            return torch.linalg.vector_norm(difference)
        return torch.linalg.vector_norm(difference, dim=1)

    def mean_shift(self, z_t: Tensor, t: Tensor) -> Tensor:
        """``guide_scale * d violation / d z_t``, shaped like ``z_t`` (``get_mean_shift``)."""
        with torch.enable_grad():
            z_in = z_t.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.violation(z_in, t).sum(), z_in)
        return self.guide_scale * grad

    def shift_mean(self, mean: Tensor, z_t: Tensor, t: Tensor, sigma: Tensor) -> Tensor:
        """``mean - sigma * mean_shift(z_t, t)``; ``sigma`` broadcasts like ``"b 1 1 1 1"``."""
        return mean - sigma * self.mean_shift(z_t, t)
