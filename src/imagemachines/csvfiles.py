"""CSV files that people open in spreadsheets: a cell that would run as a formula is written as text.

Excel, LibreOffice and Google Sheets run a cell that begins with ``=``, ``+``, ``-`` or ``@`` (or a tab or a
carriage return; some also take the full-width forms) as a formula, so a painting's title
``=HYPERLINK("http://…")`` from a catalog or a metadata file could fetch a web page, or worse, when someone
opens the CSV. Every CSV the project writes goes through :func:`writer` or :func:`dict_writer`: such a cell gets
a leading apostrophe, the usual mark of text (OWASP's advice), so it shows as text and never runs.

A plain number (``-0.25``, ``+3``, ``1e-05``: digits, one point, an exponent, nothing else) is kept as it is,
in any column: a spreadsheet reads it as that number, and a number cannot call anything. So negative values and
scores stay numbers. A WGA date ``-`` (unknown) becomes ``'-``.

The project reads some of its own CSV files back (a WGA ``subset.csv`` joined into an index, the gallery's
captions): :func:`restore` takes the apostrophe off again, so ``restore(neutral(text)) == text`` for any text.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from typing import Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")  # and the full-width = + - @
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _runs(text: str) -> bool:
    """Whether a spreadsheet would take *text* (after any apostrophes it begins with) for a formula."""
    return text.startswith(TRIGGERS) and not NUMBER.fullmatch(text)


def neutral(value: Any) -> Any:
    """*value* as a CSV cell that no spreadsheet runs: text that would run gets a leading apostrophe (as does
    text that only an apostrophe keeps from running, so that :func:`restore` is exact); numbers, and text that
    is a plain number, are kept."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = str(value)
    return "'" + text if _runs(text.lstrip("'")) else text


def restore(text: str) -> str:
    """A cell read back from a CSV the project wrote: the apostrophe :func:`neutral` added, taken off."""
    return text[1:] if text.startswith("'") and _runs(text.lstrip("'")) else text


class _Writer:
    """``csv.writer`` whose rows pass through :func:`neutral`."""

    def __init__(self, f, **kw):
        self._writer = csv.writer(f, **kw)

    def writerow(self, row: Iterable) -> Any:
        return self._writer.writerow([neutral(v) for v in row])

    def writerows(self, rows: Iterable[Iterable]) -> None:
        for row in rows:
            self.writerow(row)


class _DictWriter(csv.DictWriter):
    """``csv.DictWriter`` whose header and values pass through :func:`neutral`."""

    def writerow(self, rowdict: Mapping) -> Any:
        return super().writerow({k: neutral(v) for k, v in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping]) -> None:
        for row in rowdicts:
            self.writerow(row)


def writer(f, **kw) -> _Writer:
    """Like ``csv.writer(f, **kw)``, every cell neutralised (see the module doc)."""
    return _Writer(f, **kw)


def dict_writer(f, fieldnames: Iterable[str], **kw) -> _DictWriter:
    """Like ``csv.DictWriter(f, fieldnames, **kw)``, the header and every cell neutralised."""
    return _DictWriter(f, list(fieldnames), **kw)
