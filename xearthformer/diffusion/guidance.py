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

from collections.abc import Callable, Collection
from typing import Literal, Protocol

import torch
from torch import Tensor

from xearthformer.nn._validation import ConfigError

__all__ = ["CleanEstimateControl", "Guidance", "KnowledgeControl"]

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


class CleanEstimateControl:
    """Knowledge control on the sampler's clean estimate: project ``z0_hat`` toward the target.

    A variant of :class:`KnowledgeControl` (not in the official code; this package's method)
    for alignment functions that are accurate on *clean* latents only, e.g. the exact quantity
    of the decoded forecast, ``Q(decode(z0))``, or an alignment network evaluated at ``t = 0``.
    At every reverse step the sampler's prediction ``z0_hat`` is moved along the gradient of
    the quantity by a damped Gauss-Newton (Polyak) step toward ``A(z0_hat) = target``,

        z0' = z0_hat - guide_scale * J^T (J J^T)^-1 (A(z0_hat) - target),   J = dA/dz0

    (for ``k = 1``: ``(A - target) grad A / ||grad A||^2``), and the step's mean is then built
    from ``z0'`` as usual. ``guide_scale`` is the fraction of the remaining violation removed
    per step (clamped to [0, 1]); since the last step's output *is* its clean estimate, the
    final forecast meets the target up to the linearisation error. Unlike the PreDiff mean
    shift, the pull shrinks with the violation (no bang-bang around the target) and does not
    rely on the alignment network reading noisy latents.

    Every decision is taken per member (row of the batch): a member whose violation is below
    ``tol`` is left alone while the others iterate, so a member's result does not depend on
    which members share its batch.

    **Cheap mode** (``exact_at``): evaluating ``A`` exactly can cost much more than the
    denoiser (a decoding and a backward pass through the decoder). With ``exact_at`` given,
    ``A`` and its Jacobian are evaluated exactly only at the steps ``t`` listed there (and at
    the first step seen, where one Gauss-Newton step is taken); at the other steps the member's own linearisation from the latest
    exact evaluation, ``A(z) ~ A(z_ref) + J (z - z_ref)``, stands in for ``A`` (no network
    call at all). With ``reuse_jacobian=True`` the iterations of a step after its first
    compute only the value ``A(z)`` (no backward pass) and keep the Jacobian of the first
    iteration (chord iterations). The final accuracy is set by the last exact step: list
    ``0`` (the last step of every sampler) in ``exact_at``.

    Parameters
    ----------
    alignment : callable
        ``A = alignment(z0, t)`` on clean latents ``"b t h w c"`` (``t`` is passed as zeros),
        returning ``"b t k"`` (averaged over ``t``) or ``"b k"``; differentiable in ``z0``.
    target : Tensor or float
        As for :class:`KnowledgeControl`.
    guide_scale : float
        Fraction of the violation removed per step, in [0, 1].
    iterations : int
        At most this many Gauss-Newton steps per exact step; a member stops once its
        violation is below ``tol``. More than one helps where the quantity is not linear, e.g.
        a mean over values clipped to a valid range near its bound.
    tol : float
        Violation (in the units of ``A``) below which a member takes no further step.
    exact_at : collection of int, optional
        Steps ``t`` at which ``A`` is evaluated exactly; None (default): every step.
    reuse_jacobian : bool
        Keep a step's first Jacobian for its later iterations (value-only chord iterations).

    Examples
    --------
    A linear "quantity", the mean of the latent: one full step meets the target exactly.

    >>> align = lambda z, t: z.mean(dim=(1, 2, 3, 4))[:, None]
    >>> control = CleanEstimateControl(align, target=1.0, guide_scale=1.0)
    >>> z0 = torch.zeros(2, 1, 1, 1, 2)
    >>> control.correct_start(z0, torch.tensor([5, 5])).mean(dim=(1, 2, 3, 4)).tolist()
    [1.0, 1.0]
    """

    def __init__(
        self,
        alignment: Callable[[Tensor, Tensor], Tensor],
        target: Tensor | float,
        *,
        guide_scale: float = 1.0,
        iterations: int = 3,
        tol: float = 1e-3,
        exact_at: Collection[int] | None = None,
        reuse_jacobian: bool = False,
    ):
        if not callable(alignment):
            raise ConfigError(f"alignment must be callable as alignment(z0, t), got {alignment!r}")
        if not isinstance(iterations, int) or iterations < 1:
            raise ConfigError(f"iterations must be a positive int, got {iterations!r}")
        self._inner = KnowledgeControl(alignment, target, guide_scale=1.0)
        self.guide_scale = min(max(float(guide_scale), 0.0), 1.0)
        self.iterations, self.tol = iterations, float(tol)
        self.exact_at = None if exact_at is None else frozenset(int(t) for t in exact_at)
        self.reuse_jacobian = bool(reuse_jacobian)
        self._linear: tuple[Tensor, Tensor, Tensor] | None = None  # z_ref, A(z_ref), J
        self.exact_evaluations = 0  # calls of A (each one batch), for cost accounting
        self.backward_passes = 0

    @property
    def target(self):
        return self._inner.target

    def prediction(self, z0: Tensor) -> Tensor:
        """``A(z0, 0)`` reduced to ``"b k"``."""
        zeros = torch.zeros(z0.shape[0], dtype=torch.long, device=z0.device)
        self.exact_evaluations += 1
        return self._inner.prediction(z0, zeros)

    def _value_and_jacobian(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``A(z)`` ``"b k"`` and ``J = dA/dz`` ``"b k n"`` (one backward pass per ``k``)."""
        with torch.enable_grad():
            z_in = z.detach().requires_grad_(True)
            pred = self.prediction(z_in)
            rows = []
            for j in range(pred.shape[1]):
                (grad,) = torch.autograd.grad(pred[:, j].sum(), z_in,
                                              retain_graph=j + 1 < pred.shape[1])
                rows.append(grad.reshape(z.shape[0], -1))
                self.backward_passes += 1
        return pred.detach(), torch.stack(rows, dim=1)

    def _step(self, z: Tensor, residual: Tensor, jac: Tensor, active: Tensor) -> Tensor:
        """``z - guide_scale * J^T (J J^T)^-1 r`` on the active rows, the others unchanged."""
        gram = jac @ jac.transpose(1, 2)  # "b k k"
        eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        scale = gram.diagonal(dim1=1, dim2=2).amax(dim=1).clamp_min(1e-30)[:, None, None]
        coef = torch.linalg.solve(gram + 1e-12 * scale * eye, residual[..., None])  # "b k 1"
        delta = (jac.transpose(1, 2) @ coef)[..., 0].reshape(z.shape)
        keep = active.to(z.dtype).reshape(-1, *([1] * (z.ndim - 1)))
        return z - self.guide_scale * keep * delta

    def _residual(self, pred: Tensor) -> tuple[Tensor, Tensor]:
        residual = pred - self._inner._target_like(pred)
        return residual, residual.abs().amax(dim=1) > self.tol  # "b k", "b"

    def correct_start(self, z0: Tensor, t: Tensor | None) -> Tensor:
        """The corrected clean estimate ``z0'`` (same shape as ``z0``)."""
        if self.guide_scale == 0:
            return z0
        z = z0.detach()
        step_t = None if t is None else int(t.reshape(-1)[0])
        if self._linear is not None and z.shape != self._linear[0].shape:
            self._linear = None  # a new batch: start afresh
        exact = self.exact_at is None or self._linear is None or step_t in self.exact_at
        if not exact:  # the member's own linearisation from its latest exact evaluation
            z_ref, pred_ref, jac = self._linear
            pred = pred_ref + (jac @ (z - z_ref).reshape(z.shape[0], -1, 1))[..., 0]
            residual, active = self._residual(pred)
            return self._step(z, residual, jac, active).detach()
        listed = self.exact_at is None or step_t in self.exact_at
        # an unlisted first step only sets up the linearisation: one Gauss-Newton step
        jac = None
        for _ in range(self.iterations if listed else 1):
            if jac is not None and self.reuse_jacobian:  # chord step: the value only
                with torch.no_grad():
                    pred = self.prediction(z).detach()
            else:
                pred, jac = self._value_and_jacobian(z)
            self._linear = (z, pred, jac)
            residual, active = self._residual(pred)
            if not bool(active.any()):
                break
            z = self._step(z, residual, jac, active).detach()
        return z.detach()

    def shift_mean(self, mean: Tensor, z_t: Tensor, t: Tensor, sigma: Tensor) -> Tensor:
        """No mean shift: this control acts through :meth:`correct_start`."""
        return mean
