"""Progress on stderr: a tqdm bar on a terminal, plain lines in a log.

A bar redraws itself with carriage returns and, when bars are nested (``kinkgrad reproduce``
runs an experiment bar around each experiment's own bar), with cursor-movement escape codes;
written to a file or a pipe they turn a log into noise. So :func:`bar` draws with tqdm only
when the stream is a terminal. Elsewhere it returns :class:`PlainLines`: a top-level bar
(``leave=True``) writes one plain line when it closes (an epoch of ``kinkgrad train``), or one
per finished step with ``lines="step"`` (the experiments of ``reproduce``); a nested bar
(``leave=False``) writes nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

__all__ = ["bar", "is_terminal", "PlainLines"]


def is_terminal(stream: Any) -> bool:
    """True when ``stream`` is an interactive terminal."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class PlainLines:
    """The part of tqdm's interface kinkgrad uses (iteration, ``update``, ``set_postfix``,
    ``set_postfix_str``, ``close``), writing whole lines and no control characters."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, unit: str,
                 leave: bool, stream: TextIO, per_step: bool = False) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.leave, self.stream = total, desc, unit, leave, stream
        self.n, self.postfix, self.closed = 0, "", False
        self.per_step = leave and per_step
        self.t0 = time.perf_counter()

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> PlainLines:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _line(self) -> str:
        of = f"/{self.total}" if self.total is not None else ""
        tail = f", {self.postfix}" if self.postfix else ""
        return (f"{self.desc}: {self.n}{of} {self.unit}{tail} "
                f"({time.perf_counter() - self.t0:.1f} s)\n")

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.per_step:
            self.stream.write(self._line())
            self.stream.flush()

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = str(s)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.leave and not self.per_step:
            self.stream.write(self._line())
            self.stream.flush()


def bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
        unit: str = "it", leave: bool = True, enabled: bool = True,
        stream: TextIO | None = None, lines: str = "close") -> Any:
    """A progress reporter: tqdm on a terminal, :class:`PlainLines` elsewhere (or without
    tqdm; ``lines`` "close" or "step" says when it writes), nothing at all (the iterable
    itself, or None) when ``enabled`` is False."""
    if not enabled:
        return iterable
    stream = sys.stderr if stream is None else stream
    if is_terminal(stream):
        try:
            from tqdm import tqdm
        except ImportError:  # pragma: no cover - tqdm is a dev dependency
            pass
        else:
            return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=stream,
                        dynamic_ncols=True)
    return PlainLines(iterable, total, desc, unit, leave, stream, lines == "step")
