"""A generated stand-in for the WGA catalog and images, with the quirks of the real exports.

``make_rows`` returns rows as the catalog must store them (the expected values); ``to_xls`` / ``to_csv``
write them the way WGA's exports do (number and date-serial DATE cells in the .xls; ``;`` or ``,``
separators, quoting and Windows-1252 bytes in the .csv).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import re
import zipfile

from PIL import Image

COLUMNS = ("AUTHOR", "BORN-DIED", "TITLE", "DATE", "TECHNIQUE", "LOCATION", "URL", "FORM", "TYPE", "SCHOOL",
           "TIMEFRAME")
HOST = "https://www.wga.hu"
NOT_ON_SERVER = 3  # the last few artworks have no image on the server (404)

# Authors whose names carry the source's encoding quirks, kept verbatim: Latin-1 letters, Windows-1252-only
# letters (Ž, š, Œ), '?' where WGA replaced a letter outside Latin-1, and a Hungarian name mis-encoded at the
# source (Õ for Ő).
QUIRKY_AUTHORS = [
    ("AACHEN, Hans von", "(b. 1552, Köln, d. 1615, Praha)", "German"),
    ("SZ?NYI, István", "(b. 1894, Budapest, d. 1960, Zebegény)", "Hungarian"),
    ("ŽMUIDZINAVI?IUS, Antanas", "(b. 1876, Seirijai, d. 1966, Kaunas)", "Other"),
    ("KÕSZEGI, Bálint", "(b. 1600, Buda, d. 1650, Wien)", "Hungarian"),
    ("ŒUVRAY, Françoise", "(b. 1700, Paris, d. 1760, Paris)", "French"),
]
SCHOOLS = ("Italian", "French", "Dutch", "Flemish", "German", "Spanish")
PAINTING_TYPES = ("portrait", "landscape", "still-life", "religious", "genre")
DATES = ("1598", "c. 1596", "1654-55 (?)", "1904-06", "-", "1630s", "1620", "1902-04")
TITLES = ('The "Blue" Room, Paris', "Allegory; or Vanity", "Portrait of a Man", "View of Delft",
          "Flowers in a Vase", "Madonna, Child and Saints", "Self-Portrait (?)")


def make_rows(n_authors: int = 30, per_author: int = 10, seed: int = 0) -> list[dict[str, str]]:
    """Rows of a small catalog: several schools, forms and types, URLs of depth 1 to 3 below the artist."""
    rng = random.Random(seed)
    rows = []
    for a in range(n_authors):
        if a < len(QUIRKY_AUTHORS):
            author, born, school = QUIRKY_AUTHORS[a]
        else:
            author, born, school = f"PAINTER{a:02d}, Jan", f"(b. {1500 + a}, Delft, d. {1560 + a}, Paris)", \
                rng.choice(SCHOOLS)
        folder = f"p/painter{a:02d}"
        for k in range(per_author):
            form = "sculpture" if k == per_author - 1 else "painting"
            kind = "religious" if form == "sculpture" else PAINTING_TYPES[(a + k) % len(PAINTING_TYPES)]
            sub = ["", "1/", "2/3/"][k % 3]
            name = f"work{k}" + ("." if a == 0 and k == 4 else "")  # WGA has a few 'name..html' pages
            rows.append({
                "AUTHOR": author, "BORN-DIED": born, "TITLE": TITLES[(a + k) % len(TITLES)],
                "DATE": DATES[(a * 3 + k) % len(DATES)], "TECHNIQUE": f"Oil on canvas, {40 + k} x {30 + a} cm",
                "LOCATION": "Private collection" if k % 2 else "Rijksmuseum, Amsterdam",
                "URL": f"{HOST}/html/{folder}/{sub}{name}.html", "FORM": form, "TYPE": kind, "SCHOOL": school,
                "TIMEFRAME": "1601-1650",
            })
    return rows


def key_of(row: dict[str, str]) -> str:
    return row["URL"].split("/html/", 1)[1][: -len(".html")]


def to_xls(rows: list[dict[str, str]]) -> bytes:
    """An Excel 97 workbook like WGA's: year DATEs as number cells, ``1904-06`` ranges as date cells."""
    import xlwt

    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("index")
    date_style = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    for c, name in enumerate(COLUMNS):
        sheet.write(0, c, name)
    for r, row in enumerate(rows, start=1):
        for c, name in enumerate(COLUMNS):
            value = row[name]
            if name == "DATE" and re.fullmatch(r"\d{3,4}", value):
                sheet.write(r, c, float(value))
            elif name == "DATE" and (m := re.fullmatch(r"(\d{4})-(\d{2})", value)) and 1 <= int(m[2]) <= 12:
                sheet.write(r, c, dt.datetime(int(m[1]), int(m[2]), 1), date_style)
            else:
                sheet.write(r, c, value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def to_csv(rows: list[dict[str, str]], delimiter: str = ";", encoding: str = "cp1252") -> bytes:
    """A text export: header line, every field quoted when needed, Windows-1252 (or UTF-8) bytes."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([row[c] for c in COLUMNS])
    return out.getvalue().encode(encoding)


def zipped(member: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(member, data)
    return out.getvalue()


def make_jpeg(key: str, size: tuple[int, int] = (96, 64)) -> bytes:
    """A small JPEG whose colours depend on *key* (so every image differs)."""
    rng = random.Random(key)
    img = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    for x in range(0, size[0], 8):
        img.paste(tuple(rng.randrange(256) for _ in range(3)), (x, 0, x + 4, size[1]))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()
