"""A status line for long loops: rewritten in place while the loop runs, then a summary.

Every loop of the package that reports progress (``MagnitudeEdgeInferer.fit`` over its
batches, a training loop over an epoch's batches, a command-line run) uses
:class:`Progress`::

    with Progress("fit", total=len(loader), enabled=verbose) as progress:
        for i, (x, y) in enumerate(loader):
            ...
            progress.update(i + 1, samples=n_seen)

While the loop runs the line reads ``fit: batch 3/10 | n=192 | 1500 samples/s | ETA 1s``
(the ``/10`` and the ETA -- time so far per unit times the units left -- only when the
total is known, ``n=`` and the rate in samples only when samples
are counted, otherwise the rate is in units per second). It is redrawn with a carriage
return at most every ``interval`` seconds and always for the last unit. Leaving the
``with`` normally replaces it with one summary line ending in a newline
(``fit: 10 batches, n=640 in 0.42 s (1524 samples/s)``); leaving it by an exception
only ends the open line, so the traceback starts on a line of its own. A disabled
progress writes nothing.
"""

from __future__ import annotations

import math
import sys
import time
from types import TracebackType
from typing import TextIO

__all__ = ["Progress", "format_seconds"]


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``: a duration for a status line."""
    s = max(int(round(seconds)), 0)
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


class Progress:
    """One self-overwriting status line over the units (batches, steps...) of a loop.

    Args:
        label: what runs, the start of every line (e.g. ``"MagnitudeEdgeInferer.fit"``).
        total: how many units there will be, or None when unknown.
        unit / units: the unit's name, singular and plural (default batch / batches).
        enabled: False makes every method a no-op.
        stream: where to write (default ``sys.stdout`` at construction time).
        interval: least number of seconds between two redraws of the running line.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "batch",
        units: str = "batches",
        enabled: bool = True,
        stream: TextIO | None = None,
        interval: float = 0.1,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.units = units
        self.enabled = bool(enabled)
        self.stream = stream if stream is not None else sys.stdout
        self.interval = interval
        self.count = 0
        self.samples: int | None = None
        self.note = ""
        self.start = time.perf_counter()
        self._drawn_at = -math.inf
        self._width = 0
        self._open = False

    def elapsed(self) -> float:
        """Seconds since construction."""
        return time.perf_counter() - self.start

    def _rate(self, seconds: float) -> str:
        if self.samples is None:
            return f"{self.count / max(seconds, 1e-9):.1f} {self.units}/s"
        return f"{self.samples / max(seconds, 1e-9):.0f} samples/s"

    def _emit(self, text: str, newline: bool) -> None:
        # Pad with blanks so a shorter line fully covers the previous one.
        pad = " " * max(self._width - len(text), 0)
        self._width = len(text)
        self.stream.write("\r" + text + pad + ("\n" if newline else ""))
        self.stream.flush()
        self._open = not newline

    def update(self, count: int, *, samples: int | None = None, note: str = "") -> None:
        """Record that ``count`` units are done (``samples`` items in them, if counted;
        ``note`` is shown in brackets) and redraw the line unless it was drawn less than
        ``interval`` seconds ago and this is not the last unit."""
        self.count, self.samples, self.note = count, samples, note
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._drawn_at < self.interval and count != self.total:
            return
        self._drawn_at = now
        of = f"/{self.total}" if self.total is not None else ""
        parts = [f"{self.label}: {self.unit} {count}{of}"]
        if samples is not None:
            parts.append(f"n={samples}" + (f" ({note})" if note else ""))
        elif note:
            parts[0] += f" ({note})"
        parts.append(self._rate(now - self.start))
        if self.total is not None and 0 < count < self.total:
            left = (now - self.start) / count * (self.total - count)
            parts.append(f"ETA {format_seconds(left)}")
        self._emit(" | ".join(parts), newline=False)

    def close(self) -> None:
        """Replace the running line by the summary of what :meth:`update` last recorded."""
        if not self.enabled:
            return
        seconds = self.elapsed()
        text = f"{self.label}: {self.count} {self.unit if self.count == 1 else self.units}"
        if self.samples is not None:
            text += f", n={self.samples}"
        if self.note:
            text += f", {self.note}"
        self._emit(f"{text} in {seconds:.2f} s ({self._rate(seconds)})", newline=True)

    def clear(self) -> None:
        """Erase the running line (no summary): for a loop that prints its own line
        when it finishes (the training loop's per-epoch line)."""
        if self.enabled and self._open:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._open = False
            self._width = 0

    def abort(self) -> None:
        """End an open running line without a summary (the loop failed)."""
        if self.enabled and self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
