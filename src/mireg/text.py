"""Message helpers shared by every layer: did-you-mean hints and docstring summaries."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable


def did_you_mean(name: str, known: Iterable[str], *, n: int = 1, cutoff: float = 0.6) -> str:
    """``" Did you mean 'x'?"`` (or ``'x' or 'y'``) for the ``n`` closest of ``known``; ``""`` when none is close."""
    close = difflib.get_close_matches(name, list(known), n=n, cutoff=cutoff)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def summary_line(obj: object) -> str:
    """The first line of ``obj``'s docstring (inherited ones included), or ``""``."""
    doc = inspect.getdoc(obj) or ""
    return doc.splitlines()[0].strip() if doc else ""
