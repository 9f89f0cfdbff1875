"""Parsing WGA exports: xls number and date-serial cells, csv separators, encodings and quoting."""

from __future__ import annotations

import pytest
import wgafake

from imagemachines.errors import UserError
from imagemachines.wga.parse import (
    COLUMNS,
    clean_text,
    decode_text,
    excel_serial_to_text,
    parse_catalog,
)


@pytest.mark.parametrize(("serial", "datemode", "text"), [
    (1614.0, 0, "1904-06"),   # '1904-06' (1904 to 1906) that Excel read as June 1904
    (122.0, 0, "1900-05"),    # before Excel's phantom 29 February 1900
    (1.0, 0, "1900-01"),
    (883.0, 0, "1902-06"),
    (1625.0, 0, "1904-06-12"),  # not the first of a month: a real date, written ISO
    (0.0, 1, "1904-01"),      # the Mac 1904 date system
])
def test_excel_serials_become_wga_year_ranges(serial, datemode, text):
    assert excel_serial_to_text(serial, datemode) == text


def test_clean_text_drops_float_suffix_only():
    assert clean_text(" 1598.0 ") == "1598"
    assert clean_text("1654-55 (?)") == "1654-55 (?)"
    assert clean_text("c. 1596") == "c. 1596"
    assert clean_text("1.5") == "1.5"


def test_xls_roundtrip_restores_dates_and_keeps_names(rows):
    pytest.importorskip("xlwt")
    parsed = parse_catalog(wgafake.zipped("catalog.xls", wgafake.to_xls(rows)), "data_xls.zip")
    assert parsed.fmt == "xls" and parsed.member == "data_xls.zip:catalog.xls"
    assert parsed.rows == rows  # every value, quirks included, exactly as intended
    dates = {r["DATE"] for r in parsed.rows}
    assert {"1598", "1904-06", "1902-04", "1654-55 (?)"} <= dates
    assert not any(d.endswith(".0") for d in dates)


@pytest.mark.parametrize("delimiter", [";", ","])
def test_csv_detects_separator_and_windows_1252(rows, delimiter):
    data = wgafake.to_csv(rows, delimiter=delimiter, encoding="cp1252")
    parsed = parse_catalog(wgafake.zipped("catalog.csv", data), "data_txt.zip")
    assert (parsed.fmt, parsed.delimiter, parsed.encoding) == ("csv", delimiter, "cp1252")
    assert parsed.rows == rows
    authors = {r["AUTHOR"] for r in parsed.rows}
    # '?' from the source, Windows-1252-only letters and the mis-encoded Hungarian name are all kept as is
    assert {"SZ?NYI, István", "ŽMUIDZINAVI?IUS, Antanas", "KÕSZEGI, Bálint", "ŒUVRAY, Françoise"} <= authors
    assert any(r["BORN-DIED"] == "(b. 1552, Köln, d. 1615, Praha)" for r in parsed.rows)
    assert any(r["TITLE"] == 'The "Blue" Room, Paris' for r in parsed.rows)
    assert any(r["TITLE"] == "Allegory; or Vanity" for r in parsed.rows)


def test_csv_in_utf8_is_read_as_utf8(rows):
    parsed = parse_catalog(wgafake.to_csv(rows, encoding="utf-8"), "catalog.csv")
    assert parsed.encoding == "utf-8" and parsed.rows == rows


def test_undefined_windows_1252_bytes_fall_back_to_latin1():
    text, enc = decode_text(b"A\x81B\xe9")
    assert (text, enc) == ("A\x81Bé", "cp1252")


def test_short_csv_lines_are_reported_not_dropped_silently(rows):
    data = wgafake.to_csv(rows[:3]) + b"broken;line\r\n"
    parsed = parse_catalog(data, "catalog.csv")
    assert len(parsed.rows) == 3
    assert len(parsed.skipped) == 1 and "2 fields" in parsed.skipped[0]


def test_missing_columns_is_a_clear_error():
    with pytest.raises(UserError, match="lacks the column"):
        parse_catalog(b"AUTHOR;TITLE\r\nx;y\r\n", "catalog.csv")


@pytest.mark.parametrize(("data", "message"), [
    (b"PK\x03\x04garbage", "damaged zip"),
    (wgafake.zipped("readme.md", b"hello"), "holds no catalog"),
    (b"<html>404</html>", "neither"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "not a readable .xls"),
])
def test_wrong_files_are_clear_errors(data, message):
    with pytest.raises(UserError, match=message):
        parse_catalog(data, "source")


def test_header_names_are_matched_loosely(rows):
    data = wgafake.to_csv(rows[:2]).replace(b"BORN-DIED", b"born_died", 1)
    parsed = parse_catalog(data, "catalog.csv")
    assert [r["BORN-DIED"] for r in parsed.rows] == [r["BORN-DIED"] for r in rows[:2]]
    assert set(parsed.rows[0]) == set(COLUMNS)
