"""The catalog database: one SQLite table ``artworks`` with the 11 WGA columns, a stable ``ID`` and ``IMAGE_URL``.

A new import is written to a temporary file and renamed over the old one, so a failed import never damages
the catalog already there.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from imagemachines.errors import UserError
from imagemachines.wga.parse import COLUMNS, MAX_CATALOG_BYTES, ParsedCatalog, parse_catalog
from imagemachines.wga.urls import BadPageUrl, derive_image_url, page_key

EXTRA_COLUMNS = ("ID", "IMAGE_URL")
ALL_COLUMNS = ("ID", *COLUMNS, "IMAGE_URL")


@dataclass
class CatalogSummary:
    """What an import stored."""

    path: Path
    rows: int
    skipped: list[str]
    duplicates: int
    fmt: str
    member: str
    encoding: str | None
    delimiter: str | None


def q(column: str) -> str:
    """A column name quoted for SQL (``BORN-DIED`` needs it)."""
    return '"' + column.replace('"', '""') + '"'


def fold(value: str | None) -> str:
    """Case-insensitive comparison key (Unicode aware, unlike SQLite's ``lower``)."""
    return "" if value is None else value.casefold()


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    """Open a catalog database with the ``fold`` SQL function registered."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro" if readonly else str(path), uri=readonly)
    conn.create_function("fold", 1, fold, deterministic=True)
    return conn


def open_catalog(root: Path) -> sqlite3.Connection:
    """The catalog of a data dir, read-only; a clear error when none was imported yet."""
    path = root / "catalog.sqlite"
    if not path.is_file():
        raise UserError(f"no catalog in {root}: run `imagemachines wga catalog` first "
                        f"(with the same --data-dir).")
    return connect(path, readonly=True)


def read_source(source: str, user_agent: str, timeout: float = 120.0) -> tuple[bytes, str]:
    """The bytes of a local file or an http(s) URL, and a name for messages."""
    too_big = UserError(f"{source} is larger than {MAX_CATALOG_BYTES // 2**20} MiB, far more than any WGA "
                        "catalog; check --source.")
    if source.startswith(("http://", "https://")):
        import httpx

        from imagemachines.wga.fetch import ForeignRedirect, redirect_guard

        chunks, n = [], 0
        try:
            with httpx.Client(headers={"User-Agent": user_agent}, timeout=timeout, follow_redirects=True,
                              event_hooks={"request": [redirect_guard(source)]}) as c, c.stream("GET", source) as resp:
                if resp.status_code != 200:
                    raise UserError(f"{source} answered HTTP {resp.status_code}; check --source / --base-url.")
                for chunk in resp.iter_bytes(1 << 20):
                    n += len(chunk)
                    if n > MAX_CATALOG_BYTES:
                        raise too_big
                    chunks.append(chunk)
        except ForeignRedirect as exc:
            raise UserError(f"{source}: {exc}; download the catalog by hand and pass the file to --source.") from None
        except httpx.HTTPError as exc:
            raise UserError(f"could not download the catalog from {source} ({exc!r}); check the address and "
                            f"your connection, or pass --source with a downloaded file.") from exc
        return b"".join(chunks), source.rsplit("/", 1)[-1] or source
    path = Path(source).expanduser()
    if not path.is_file():
        raise UserError(f"catalog source {source!r} is neither an http(s) URL nor a file; "
                        f"pass a data_xls.zip, data_txt.zip, catalog.xls or catalog.csv.")
    if path.stat().st_size > MAX_CATALOG_BYTES:
        raise too_big
    return path.read_bytes(), path.name


def _records(parsed: ParsedCatalog) -> tuple[list[tuple], list[str], int]:
    """Rows as tuples in ``ALL_COLUMNS`` order plus source ROW; bad URLs skipped, duplicate ids kept once."""
    out, skipped, seen, dups = [], list(parsed.skipped), set(), 0
    for n, row in enumerate(parsed.rows, start=1):
        try:
            key = page_key(row["URL"])
            image = derive_image_url(row["URL"])
        except BadPageUrl as exc:
            skipped.append(f"row {n + 1}: {exc}")
            continue
        if key in seen:
            dups += 1
            continue
        seen.add(key)
        out.append((key, *(row[c] for c in COLUMNS), image, n))
    return out, skipped, dups


def write_catalog(parsed: ParsedCatalog, root: Path, source: str) -> CatalogSummary:
    """Store parsed rows as ``<root>/catalog.sqlite`` (atomically replacing an older import)."""
    records, skipped, dups = _records(parsed)
    if not records:
        raise UserError(f"{parsed.member} has no usable rows ({len(skipped)} skipped, e.g. "
                        f"{skipped[:3]}); check the source.")
    root.mkdir(parents=True, exist_ok=True)
    final = root / "catalog.sqlite"
    tmp = root / f".catalog.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    conn = connect(tmp)
    try:
        cols = ", ".join(f"{q(c)} TEXT NOT NULL" for c in ALL_COLUMNS[1:])
        conn.execute(f"CREATE TABLE artworks ({q('ID')} TEXT PRIMARY KEY, {cols}, ROW INTEGER NOT NULL)")
        marks = ", ".join("?" * (len(ALL_COLUMNS) + 1))
        conn.executemany(f"INSERT INTO artworks VALUES ({marks})", records)
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        meta = {"source": source, "member": parsed.member, "format": parsed.fmt, "rows": str(len(records)),
                "encoding": parsed.encoding or "", "delimiter": parsed.delimiter or "",
                "imported": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "skipped": str(len(skipped)),
                "duplicates": str(dups)}
        conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        conn.commit()
    finally:
        conn.close()
    os.replace(tmp, final)
    return CatalogSummary(final, len(records), skipped, dups, parsed.fmt, parsed.member, parsed.encoding,
                          parsed.delimiter)


def import_catalog(source: str, root: Path, user_agent: str) -> CatalogSummary:
    """Fetch (or read) a catalog export, parse it and store it in the data dir."""
    data, name = read_source(source, user_agent)
    return write_catalog(parse_catalog(data, name), root, source)


def catalog_meta(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT key, value FROM meta"))
