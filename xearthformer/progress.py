"""When to show progress bars: on a terminal and in a Jupyter kernel, never in logs.

The package's long calls (``ensemble``, ``forecast`` over many inits, ``evaluate``, ``fit``)
take ``progress=None`` to mean :func:`show_progress`'s choice. Bars come from ``tqdm.auto``:
a widget in Jupyter where ipywidgets is installed, text otherwise.
"""

from __future__ import annotations

import sys

__all__ = ["in_jupyter_kernel", "show_progress"]


def in_jupyter_kernel() -> bool:
    """True inside a running Jupyter (IPython) kernel, False in a plain or terminal IPython.

    Examples
    --------
    >>> in_jupyter_kernel()     # doctests do not run in a kernel
    False
    """
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001 - a broken IPython install must not break forecasting
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def show_progress(progress: bool | None) -> bool:
    """``progress`` if given, else True on a terminal (stderr is a TTY) or in a Jupyter kernel.

    Logs (stderr redirected to a file or a pipe, as in CI) get no bars.

    Examples
    --------
    >>> show_progress(False), show_progress(True)
    (False, True)
    """
    if progress is not None:
        return bool(progress)
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # stderr replaced or closed
        tty = False
    return tty or in_jupyter_kernel()
