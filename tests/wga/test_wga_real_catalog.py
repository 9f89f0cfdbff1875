"""The real January 2018 WGA export (read in place from ../shared; skipped when absent)."""

from __future__ import annotations

import pytest

from imagemachines.wga.catalog import catalog_meta, open_catalog
from imagemachines.wga.query import count, count_by, parse_query, select_rows


@pytest.fixture(scope="module")
def conn(real_catalog):
    c = open_catalog(real_catalog)
    yield c
    c.close()


def test_row_count_and_unique_ids(conn):
    assert count(conn, parse_query("")) == 44809
    assert conn.execute("SELECT COUNT(DISTINCT ID) FROM artworks").fetchone()[0] == 44809
    meta = catalog_meta(conn)
    assert meta["rows"] == "44809" and meta["format"] == "xls" and meta["skipped"] == "0"


def test_counts_of_the_paper(conn):
    assert count(conn, parse_query("FORM=painting")) == 30309
    by_type = dict(count_by(conn, parse_query("FORM=painting"), "TYPE"))
    assert (by_type["portrait"], by_type["landscape"], by_type["still-life"]) == (4536, 3957, 1363)
    assert count(conn, parse_query("FORM=painting TYPE=portrait,landscape,still-life")) == 4536 + 3957 + 1363


def test_date_normalisation(conn):
    rows = {r["TITLE"]: r for r in select_rows(conn, parse_query('AUTHOR="AACHEN, Hans von"'))}
    assert rows["Allegory"]["DATE"] == "1598"  # a number cell, 1598.0 in the file
    assert not conn.execute("SELECT COUNT(*) FROM artworks WHERE DATE LIKE '%.0'").fetchone()[0]
    # Excel turned '1904-06' style year ranges into date serials; they are year ranges again
    cezanne = select_rows(conn, parse_query('AUTHOR="CÉZANNE, Paul" TITLE="Blue Landscape"'))
    assert [r["DATE"] for r in cezanne] == ["1904-06"]
    thinker = select_rows(conn, parse_query('AUTHOR="RODIN, Auguste" TITLE="The Thinker"'))
    assert [r["DATE"] for r in thinker] == ["1902-04"]
    assert "1654-55 (?)" in {r[0] for r in conn.execute("SELECT DATE FROM artworks")}  # '?' kept


def test_image_urls(conn):
    row = select_rows(conn, parse_query("ID=a/aachen/allegory"))[0]
    assert row["URL"] == "https://www.wga.hu/html/a/aachen/allegory.html"
    assert row["IMAGE_URL"] == "https://www.wga.hu/art/a/aachen/allegory.jpg"
    deep = select_rows(conn, parse_query("ID=d/durer/2/12/7smallp/1/01_small"))[0]
    assert deep["IMAGE_URL"] == "https://www.wga.hu/art/d/durer/2/12/7smallp/1/01_small.jpg"
    bad = conn.execute("SELECT COUNT(*) FROM artworks WHERE IMAGE_URL NOT LIKE 'https://www.wga.hu/art/%.jpg'")
    assert bad.fetchone()[0] == 0


def test_case_insensitive_non_ascii_match(conn):
    assert count(conn, parse_query('AUTHOR="cézanne, paul"')) == count(conn, parse_query('AUTHOR="CÉZANNE, Paul"'))
    assert count(conn, parse_query('AUTHOR="cézanne, paul"')) > 0
