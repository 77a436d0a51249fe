"""Rounding bounds that every numerical tolerance of the package and its tests rests on.

A tolerance read off what one machine produced breaks on the next one: float32 ``exp``,
``sin`` and ``cos`` round differently on AVX2, AVX-512 and MKL's vector-math paths
(``MKL_CBWR``, ``ATEN_CPU_CAPABILITY``), and reductions are summed in another order with
another number of threads. Each tolerance is therefore written as a multiple of the unit
roundoff ``u`` of the precision that is computed, with the multiple explained where it is
used (see ``docs/conventions.md``, "Tolerances").

The module is numpy-only, so metrics, plots and tests can all import it; a ``torch.dtype``
is accepted by name.

Examples
--------
>>> unit_roundoff("float32") == 2.0 ** -24
True
>>> golden_tolerance("float64") < golden_tolerance("float32")
True
>>> coordinate_tolerance(np.float32([359.9]), np.float64([359.9])) > 1e-5
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "ELEMENTARY_FUNCTION_ULPS",
    "coordinate_tolerance",
    "correlation_error",
    "float32_trig_error",
    "golden_tolerance",
    "output_tolerance",
    "reduction_error",
    "sum_error",
    "unit_roundoff",
]

#: Unit roundoff ``u = 2**-p`` (half the machine epsilon) of each floating-point format.
_UNIT_ROUNDOFF = {
    "float16": 2.0 ** -11,
    "bfloat16": 2.0 ** -8,
    "float32": 2.0 ** -24,
    "float64": 2.0 ** -53,
}

#: Largest error, in units in the last place, of the float32 elementary functions (``exp``,
#: ``sin``, ``cos``) that torch may call: SLEEF's ``u10`` kernels and glibc promise 1 ulp,
#: MKL VML's "LA" accuracy mode 4 ulp. Two machines may sit at opposite ends of that range.
ELEMENTARY_FUNCTION_ULPS = 4


def unit_roundoff(dtype: Any) -> float:
    """Unit roundoff ``u`` of a numpy dtype, a ``torch.dtype`` or a dtype name.

    >>> unit_roundoff(np.float64)
    1.1102230246251565e-16
    """
    text = str(dtype)
    try:
        if text.startswith("torch."):  # torch.float32, torch.bfloat16, ...
            name = {"float": "float32", "double": "float64", "half": "float16"}.get(
                text[6:], text[6:])
        else:
            name = text if text in _UNIT_ROUNDOFF else np.dtype(dtype).name
        return _UNIT_ROUNDOFF[name]
    except (KeyError, TypeError) as err:
        raise ValueError(f"no unit roundoff known for dtype {dtype!r}; expected one of "
                         f"{sorted(_UNIT_ROUNDOFF)}") from err


def reduction_error(n: int, dtype: Any) -> float:
    """Worst-case relative error ``gamma_n = n u / (1 - n u)`` of a sum or dot product of ``n`` terms.

    Relative to the sum of the absolute values of the terms (Higham, *Accuracy and Stability of
    Numerical Algorithms*, 2nd ed., eq. 3.5); any summation order, so any thread count.

    >>> reduction_error(1000, "float32") < 1e-4
    True
    """
    nu = n * unit_roundoff(dtype)
    if nu >= 1:
        raise ValueError(f"n={n} terms exceed the range of the bound for {dtype}")
    return nu / (1 - nu)


def golden_tolerance(dtype: Any) -> float:
    """Tolerance of a check against a reference made by the official code, relative to ``max(1, |ref|)``.

    * **float32: 1e-4.** The error of a network evaluated in two summation orders grows like
      ``L * sqrt(n) * u`` (probabilistic rounding-error analysis, Higham & Mary 2019), for ``L``
      layers of reductions over ``n`` terms. The golden models have at most ``L ~ 25`` such
      layers and ``n <= 4096`` (the widest convolution or projection):
      ``25 * 64 * 2**-24 = 9.5e-5``. A layout, masking or indexing bug shows at 1e-2 and above.
    * **float64: 1e-10.** The same estimate gives ``2e-13``; a float32 step slipping into a
      float64 path shows at ``u32 ~ 6e-8`` and above. 1e-10 sits between the two (2.7
      decades from each), so the check fails on a float32 slip and on nothing else.

    A float64 check whose path runs a float32 step on purpose (as the official code does)
    inherits that step's bound instead: see :func:`float32_trig_error` and the tests.

    >>> golden_tolerance("float32"), golden_tolerance("float64")
    (0.0001, 1e-10)
    """
    u = unit_roundoff(dtype)
    if u >= _UNIT_ROUNDOFF["float32"]:
        return 1e-4 * (u / _UNIT_ROUNDOFF["float32"])
    return 1e-10


def float32_trig_error(argument: Any, *, ulps: int = ELEMENTARY_FUNCTION_ULPS) -> np.ndarray:
    """Bound on the difference between two machines' float32 ``sin``/``cos`` of ``t * exp(c)``.

    The argument ``a = t * f`` is built from a float32 ``f = exp(c)`` (off by up to ``ulps`` ulp
    on each machine, so ``2 ulps`` apart) and one float32 product (half an ulp each way); sin and
    cos have slope at most 1 and are each off by up to ``ulps`` ulp of a result below 1. With
    one ulp at most ``2u`` relative:

    ``|delta| <= |a| * (2 * ulps + 1) * 2u + 2 * ulps * 2u``

    This is what a float32 sinusoidal embedding of diffusion steps up to ~1000 can promise:
    about 1e-3 at ``a = 1000``, 2e-6 near zero; an ordering or frequency bug shows at 1e-1.

    >>> float(float32_trig_error(999.0)) < 1.1e-3
    True
    """
    u = _UNIT_ROUNDOFF["float32"]
    a = np.abs(np.asarray(argument, dtype=np.float64))
    return a * (2 * ulps + 1) * 2 * u + 2 * ulps * 2 * u


def coordinate_tolerance(*coordinates: Any) -> float:
    """Absolute tolerance to call grid coordinates equal: rounding of the coarsest one given.

    Coordinates arrive as float64 or float32 (many netCDF files store ``lat``/``lon`` as
    float32, where 359.9 is 359.899993896...). Two representations of the same value differ
    by at most one rounding of each, ``2 u |c|``; a factor 8 more covers coordinates that were
    computed (``start + i * step``, a unit conversion) before they were stored: ``16 u |c|``,
    with ``|c|`` at least 1.

    >>> coordinate_tolerance(np.arange(0.0, 360.0, 2.5)) < 1e-12
    True
    >>> round(coordinate_tolerance(np.float32([0.0, 357.5])), 7)
    0.0003409
    """
    if not coordinates:
        raise ValueError("coordinate_tolerance needs at least one array of coordinates")
    u, scale = 0.0, 1.0
    for values in coordinates:
        arr = np.asarray(values)
        u = max(u, unit_roundoff(arr.dtype) if arr.dtype.kind == "f" else _UNIT_ROUNDOFF["float64"])
        if arr.size:
            finite = np.abs(arr[np.isfinite(arr)]) if arr.dtype.kind == "f" else np.abs(arr)
            if finite.size:
                scale = max(scale, float(finite.max()))
    return 16.0 * u * scale


def sum_error(terms: Any, axis: Any = None, *, mean: bool = False) -> Any:
    """Bound on how far two evaluations of ``terms.sum(axis)`` (or ``.mean(axis)``) can differ.

    Each evaluation, in any order, chunking or thread count, is within ``gamma_n * sum|terms|``
    of the exact sum (:func:`reduction_error`); two of them within twice that. A mean divides
    by ``n``: one more rounding, ``gamma_(n+1)``. The unit roundoff is that of ``terms``
    (float64 for integers). Elementwise over the axes not reduced (take ``.max()`` for the
    scalar ``atol`` of :func:`numpy.testing.assert_allclose`).

    >>> x = np.full(1000, 0.1)
    >>> bool(sum_error(x) < 3e-11), bool(sum_error(x, mean=True) < 3e-14)
    (True, True)
    >>> sum_error(np.ones((3, 4)), axis=1).shape
    (3,)
    """
    arr = np.asarray(terms)
    dtype = arr.dtype if arr.dtype.kind == "f" else np.float64
    a = np.abs(arr.astype(np.float64))
    n = a.size if axis is None else int(np.prod([arr.shape[i] for i in np.atleast_1d(axis)]))
    total = np.nansum(a, axis=axis)
    if mean:
        return 2 * reduction_error(n + 1, dtype) * total / max(n, 1)
    return 2 * reduction_error(n, dtype) * total


def correlation_error(n: int, dtype: Any = "float64", *, kappa: float = 1.0) -> float:
    """Bound on how far two evaluations of a Pearson correlation of ``n`` pairs can differ.

    The correlation is ``r = C / sqrt(Vx Vy)`` with ``C = sum(x y) - sum(x) sum(y) / n``,
    ``Vx = sum(x^2) - sum(x)^2 / n``. Each sum is within ``gamma_n`` of the sum of its absolute
    terms (:func:`reduction_error`); by Cauchy-Schwarz, ``|dC| <= 3 gamma_n sqrt(Sxx Syy)`` and
    ``|dVx| <= 3 gamma_n Sxx`` (``Sxx = sum(x^2)``). With the cancellation factor
    ``kappa = max(Sxx / Vx, Syy / Vy)`` (1 for centred series, ``1 + mean^2 / var`` for
    one-pass sums of raw values), ``|dr| <= 3 gamma_n kappa (1 + |r|) <= 6 gamma_n kappa`` per
    evaluation, ``12 gamma_n kappa`` between two (first order; the square root and the division
    add ``2u``). Compute ``kappa`` from the data with ``1 + mean**2 / var``.

    >>> correlation_error(30) < 1e-13
    True
    >>> bool(correlation_error(67, kappa=250.0) < 3e-11)
    True
    """
    return 12 * kappa * reduction_error(n + 2, dtype)


def output_tolerance(reference: Any, *, scale: float = 1.0, offset: float = 0.0,
                     dtype: Any = "float32") -> float:
    """Absolute tolerance, in physical units, for two evaluations of a network's output.

    :func:`golden_tolerance` relative to ``max(1, |x|)`` in the model's units
    ``x = (reference - offset) / scale``, times ``|scale|`` back to physical units: two batch
    sizes, thread counts or CPUs (other kernels, other summation orders) of the same float32
    model agree to this. NaN (land) is ignored.

    >>> output_tolerance(np.array([0.5, -2.0]))
    0.0002
    >>> round(output_tolerance(np.array([0.0, 200.0]), scale=255.0), 6)
    0.0255
    """
    ref = (np.asarray(reference, dtype=np.float64) - offset) / scale
    largest = float(np.nanmax(np.abs(ref))) if np.isfinite(ref).any() else 0.0
    return golden_tolerance(dtype) * max(1.0, largest) * abs(scale)
