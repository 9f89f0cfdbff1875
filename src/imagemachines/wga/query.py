"""The small query language every ``wga`` command uses.

``FORM=painting TYPE=portrait,landscape SCHOOL!=Italian AUTHOR="GOGH, Vincent van"``: clauses are ANDed;
``=`` matches any of the comma-separated values, ``!=`` none of them; matching is exact and case-insensitive;
values with spaces or commas are quoted. Column names are the WGA ones (``_`` may stand for ``-``) plus
``ID`` and ``IMAGE_URL``. The empty query matches everything.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from imagemachines.errors import UserError, did_you_mean
from imagemachines.wga.catalog import ALL_COLUMNS, fold, q

_VALUE = r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[^\s,"\']+'
_CLAUSE = re.compile(rf"\s*([A-Za-z][A-Za-z0-9_-]*)\s*(!=|=)\s*((?:{_VALUE})(?:\s*,\s*(?:{_VALUE}))*)")
_ONE_VALUE = re.compile(_VALUE)
EXAMPLE = 'FORM=painting TYPE=portrait,landscape SCHOOL!=Italian'


class QueryError(UserError):
    """A query that cannot be parsed or names an unknown column."""


@dataclass(frozen=True)
class Clause:
    column: str
    negate: bool
    values: tuple[str, ...]


@dataclass(frozen=True)
class Query:
    clauses: tuple[Clause, ...]
    text: str = ""

    def where(self) -> tuple[str, list[str]]:
        """An SQL condition and its parameters (``1`` for the empty query)."""
        parts, params = [], []
        for c in self.clauses:
            marks = ", ".join("?" * len(c.values))
            parts.append(f"fold({q(c.column)}) {'NOT IN' if c.negate else 'IN'} ({marks})")
            params += [fold(v) for v in c.values]
        return (" AND ".join(parts) or "1"), params


def column_name(name: str) -> str:
    """The canonical column for a user-typed name; a clear error with suggestions otherwise."""
    norm = name.upper().replace("_", "-")
    if norm in ("IMAGE-URL",):
        return "IMAGE_URL"
    if norm in ALL_COLUMNS:
        return norm
    raise QueryError(f"unknown column {name!r}; columns are {', '.join(ALL_COLUMNS)}." + did_you_mean(
        name, ALL_COLUMNS))


def _unquote(token: str) -> str:
    if token.startswith('"'):
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    if token.startswith("'"):
        return token[1:-1]
    return token


def parse_query(text: str | None) -> Query:
    """Parse a query string; a syntax error points at the place and shows an example."""
    text = (text or "").strip()
    clauses, pos = [], 0
    while pos < len(text):
        while text[pos].isspace():
            pos += 1
        m = _CLAUSE.match(text, pos)
        if not m:
            raise QueryError(f"cannot read the query at position {pos + 1}: {text[pos:pos + 40]!r}; write "
                             f"COLUMN=value[,value…] or COLUMN!=value clauses, e.g. {EXAMPLE!r} "
                             f"(quote values with spaces or commas).")
        values = tuple(_unquote(v) for v in _ONE_VALUE.findall(m.group(3)))
        clauses.append(Clause(column_name(m.group(1)), m.group(2) == "!=", values))
        pos = m.end()
        if pos < len(text) and not text[pos].isspace():
            raise QueryError(f"expected a space before {text[pos:pos + 40]!r} in the query; e.g. {EXAMPLE!r}.")
    return Query(tuple(clauses), text)


def count(conn: sqlite3.Connection, query: Query) -> int:
    where, params = query.where()
    return conn.execute(f"SELECT COUNT(*) FROM artworks WHERE {where}", params).fetchone()[0]


def select_rows(conn: sqlite3.Connection, query: Query, limit: int | None = None) -> list[dict[str, str]]:
    """Matching artworks in catalog order, as dicts keyed by ``ALL_COLUMNS``."""
    where, params = query.where()
    cols = ", ".join(q(c) for c in ALL_COLUMNS)
    sql = f"SELECT {cols} FROM artworks WHERE {where} ORDER BY ROW"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [dict(zip(ALL_COLUMNS, r, strict=True)) for r in conn.execute(sql, params)]


def select_ids(conn: sqlite3.Connection, query: Query) -> list[str]:
    where, params = query.where()
    return [r[0] for r in conn.execute(f"SELECT ID FROM artworks WHERE {where} ORDER BY ROW", params)]


def count_by(conn: sqlite3.Connection, query: Query, column: str) -> list[tuple[str, int]]:
    """Counts of matching artworks per value of *column*, largest first."""
    column = column_name(column)
    where, params = query.where()
    sql = (f"SELECT {q(column)}, COUNT(*) AS n FROM artworks WHERE {where} GROUP BY fold({q(column)}) "
           f"ORDER BY n DESC, {q(column)}")
    return [(v, n) for v, n in conn.execute(sql, params)]


def unknown_values(conn: sqlite3.Connection, query: Query, max_distinct: int = 2000) -> list[str]:
    """Hints for ``=`` values that no artwork has (likely typos), with close matches."""
    hints = []
    for c in query.clauses:
        for v in c.values:
            hit = conn.execute(f"SELECT 1 FROM artworks WHERE fold({q(c.column)}) = ? LIMIT 1", [fold(v)])
            if hit.fetchone():
                continue
            distinct = [r[0] for r in conn.execute(
                f"SELECT DISTINCT {q(c.column)} FROM artworks LIMIT {max_distinct + 1}")]
            near = did_you_mean(v, distinct) if len(distinct) <= max_distinct else ""
            hints.append(f"no artwork has {c.column}={v!r}.{near}")
    return hints
