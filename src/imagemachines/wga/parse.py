"""Read a WGA catalog export (``data_xls.zip`` / ``catalog.xls``, ``data_txt.zip`` / ``catalog.csv``) into rows.

Values are kept as the source has them (mis-encoded names and ``?`` included); only what the spreadsheet
itself changed is undone: number cells (``1598.0``) become ``1598`` and Excel date serials made from year
ranges (``1904-06`` read as June 1904) become ``1904-06`` again.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import re
import zipfile
from dataclasses import dataclass, field

from imagemachines.errors import UserError

COLUMNS = ("AUTHOR", "BORN-DIED", "TITLE", "DATE", "TECHNIQUE", "LOCATION", "URL", "FORM", "TYPE", "SCHOOL",
           "TIMEFRAME")
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_FLOAT_INT = re.compile(r"^-?\d+\.0+$")
_LATIN1_FALLBACK = "imagemachines-latin1"
# The January 2018 export's catalog.xls is 26 MB; no real export comes near this. Larger members (a zip bomb) are
# refused before they are read.
MAX_CATALOG_BYTES = 128 * 1024 * 1024
codecs.register_error(_LATIN1_FALLBACK, lambda e: (e.object[e.start:e.end].decode("latin-1"), e.end))


@dataclass
class ParsedCatalog:
    """Rows of the 11 WGA columns plus how the file was read."""

    rows: list[dict[str, str]]
    fmt: str
    member: str
    encoding: str | None = None
    delimiter: str | None = None
    skipped: list[str] = field(default_factory=list)


def excel_serial_to_text(serial: float, datemode: int = 0) -> str:
    """An Excel date serial as WGA wrote it: day 1 of a month is a year range (``1904-06``), else ISO date."""
    if datemode == 1:
        day = dt.date(1904, 1, 1) + dt.timedelta(days=int(serial))
    elif serial < 60:  # Excel's 1900 system counts a 29 February 1900 that never was
        day = dt.date(1899, 12, 31) + dt.timedelta(days=int(serial))
    elif int(serial) == 60:
        return "1900-02-29"
    else:
        day = dt.date(1899, 12, 30) + dt.timedelta(days=int(serial))
    return f"{day.year}-{day.month:02d}" if day.day == 1 else day.isoformat()


def clean_text(value: str) -> str:
    """Strip whitespace; a number written as ``1598.0`` becomes ``1598``."""
    value = value.strip()
    return value.split(".")[0] if _FLOAT_INT.match(value) else value


def _column_map(header: list[str]) -> dict[str, int]:
    """Column name -> index; names compared case-insensitively, ``_`` read as ``-``."""
    found: dict[str, int] = {}
    for i, name in enumerate(header):
        norm = re.sub(r"\s+", "", str(name)).upper().replace("_", "-").lstrip("\ufeff")
        if norm in COLUMNS and norm not in found:
            found[norm] = i
    missing = [c for c in COLUMNS if c not in found]
    if missing:
        raise UserError(f"the catalog lacks the column(s) {', '.join(missing)} (its header is {header[:12]}); "
                        f"use a WGA export with {', '.join(COLUMNS)}.")
    return found


def parse_xls(data: bytes, member: str = "catalog.xls") -> ParsedCatalog:
    """Parse an Excel 97 export (the first sheet, header in row 1)."""
    import xlrd

    try:
        book = xlrd.open_workbook(file_contents=data)
    except Exception as exc:  # xlrd raises many kinds for a damaged file
        raise UserError(f"{member} is not a readable .xls file ({exc}); download the catalog again.") from exc
    sheet = book.sheet_by_name("index") if "index" in book.sheet_names() else book.sheet_by_index(0)
    if sheet.nrows == 0:
        raise UserError(f"{member} has an empty sheet; download the catalog again.")
    cols = _column_map([str(v) for v in sheet.row_values(0)])
    rows, skipped = [], []
    for r in range(1, sheet.nrows):
        row = {}
        for name, c in cols.items():
            if c >= sheet.ncols:
                row[name] = ""
                continue
            kind, value = sheet.cell_type(r, c), sheet.cell_value(r, c)
            if kind == xlrd.XL_CELL_NUMBER:
                row[name] = str(int(value)) if float(value).is_integer() else repr(value)
            elif kind == xlrd.XL_CELL_DATE:
                row[name] = excel_serial_to_text(value, book.datemode)
            elif kind in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                row[name] = ""
            else:
                row[name] = clean_text(str(value))
        if not any(row.values()):
            skipped.append(f"row {r + 1}: empty")
            continue
        rows.append(row)
    return ParsedCatalog(rows, "xls", member, skipped=skipped)


def decode_text(data: bytes) -> tuple[str, str]:
    """UTF-8 when the bytes are valid UTF-8, else Windows-1252 (Latin-1 for its five unassigned bytes)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    return data.decode("cp1252", errors=_LATIN1_FALLBACK), "cp1252"


def sniff_delimiter(first_line: str) -> str:
    """The separator that splits the header into the WGA column names (``;`` in 2018, ``,`` later, tabs)."""
    def known(delim: str) -> int:
        header = next(csv.reader([first_line], delimiter=delim))
        return sum(re.sub(r"\s+", "", h).upper().replace("_", "-") in COLUMNS for h in header)

    best = max((";", ",", "\t", "|"), key=known)
    if known(best) == 0:
        raise UserError(f"cannot find the WGA columns in the first line {first_line[:120]!r}; "
                        f"expected a header like {';'.join(COLUMNS)}.")
    return best


def detect_encoding(data: bytes) -> str:
    """``utf-8-sig``, ``utf-8`` when the bytes are valid UTF-8, else ``cp1252`` (checked without a decoded copy)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for start in range(0, len(view), 1 << 20):
            decoder.decode(view[start:start + (1 << 20)], final=start + (1 << 20) >= len(view))
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def parse_csv(data: bytes, member: str = "catalog.csv") -> ParsedCatalog:
    """Parse a text export: separator and encoding detected, quoted fields allowed; read as a stream of lines
    (no decoded copy of the whole file)."""
    encoding = detect_encoding(data)
    errors = "replace" if encoding == "utf-8-sig" else _LATIN1_FALLBACK if encoding == "cp1252" else "strict"
    stream = io.TextIOWrapper(io.BytesIO(data), encoding=encoding, errors=errors, newline="")
    first = stream.readline().lstrip("\ufeff")
    delim = sniff_delimiter(first.rstrip("\r\n"))
    reader = csv.reader(itertools.chain([first], stream), delimiter=delim)
    cols = _column_map(next(reader))
    need = max(cols.values()) + 1
    rows, skipped = [], []
    for fields in reader:
        if not fields or not any(f.strip() for f in fields):
            continue
        if len(fields) < need:
            skipped.append(f"line {reader.line_num}: {len(fields)} fields, expected {need}")
            continue
        rows.append({name: clean_text(fields[i]) for name, i in cols.items()})
    return ParsedCatalog(rows, "csv", member, encoding=encoding, delimiter=delim, skipped=skipped)


def read_member(archive: zipfile.ZipFile, member: str, name: str, limit: int | None = None) -> bytes:
    """The bytes of one archive member, at most *limit* (default ``MAX_CATALOG_BYTES``) of them: the declared
    size is checked first, then the bytes actually inflated, since a crafted zip can lie."""
    limit = MAX_CATALOG_BYTES if limit is None else limit
    too_big = UserError(f"{name}:{member} unpacks to more than {limit // 2**20} MiB, far more than any WGA catalog; "
                        "it is not one (a damaged or hostile file). Download the catalog again.")
    if archive.getinfo(member).file_size > limit:
        raise too_big
    with archive.open(member) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise too_big
    return data


def parse_catalog(data: bytes, name: str) -> ParsedCatalog:
    """Parse a zip (holding ``catalog.xls`` or ``catalog.csv``), an .xls or a .csv, told apart by content."""
    if data.startswith(_ZIP_MAGIC):
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as exc:
            raise UserError(f"{name} is a damaged zip file ({exc}); download it again.") from exc
        members = [m for m in archive.namelist() if m.lower().endswith((".xls", ".csv", ".txt"))]
        if not members:
            raise UserError(f"{name} holds no catalog.xls or catalog.csv (it has {archive.namelist()[:5]}).")
        member = sorted(members, key=lambda m: (not m.lower().endswith(".xls"), m))[0]
        return parse_catalog(read_member(archive, member, name), f"{name}:{member}")
    if data.startswith(_OLE_MAGIC):
        return parse_xls(data, name)
    if data[:1] in (b"<",) or b"\x00" in data[:4096]:
        raise UserError(f"{name} is neither a WGA catalog zip, .xls nor .csv; check the source address.")
    return parse_csv(data, name)
