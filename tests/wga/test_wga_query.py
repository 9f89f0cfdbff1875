"""The query language and the `wga query` command, on the generated catalog."""

from __future__ import annotations

import csv
import io
import json

import pytest
from clirun import run_cli

from imagemachines.wga.catalog import open_catalog
from imagemachines.wga.query import Clause, QueryError, count, count_by, parse_query, select_ids


def test_parse_clauses():
    q = parse_query('form=painting  TYPE = portrait,landscape SCHOOL!=Italian AUTHOR="GOGH, Vincent van",x')
    assert q.clauses == (
        Clause("FORM", False, ("painting",)),
        Clause("TYPE", False, ("portrait", "landscape")),
        Clause("SCHOOL", True, ("Italian",)),
        Clause("AUTHOR", False, ("GOGH, Vincent van", "x")),
    )
    assert parse_query("born_died='(b. 1552, Köln)'").clauses == (Clause("BORN-DIED", False, ("(b. 1552, Köln)",)),)
    assert parse_query("").clauses == () and parse_query(None).clauses == ()


@pytest.mark.parametrize(("text", "message"), [
    ("FORMS=painting", "unknown column 'FORMS'.*Did you mean: FORM"),
    ("FORM painting", "cannot read the query at position 1"),
    ("FORM=painting TYPE", "position 15"),
    ('AUTHOR="unclosed', "cannot read"),
    ("FORM=painting,", "expected a space"),
])
def test_query_errors_say_what_to_do(text, message):
    with pytest.raises(QueryError, match=message):
        parse_query(text)


@pytest.fixture
def conn(data_dir):
    c = open_catalog(data_dir)
    yield c
    c.close()


def _expected(rows, pred):
    return sum(1 for r in rows if pred(r))


def test_matching_semantics(conn, rows):
    assert count(conn, parse_query("")) == len(rows)
    assert count(conn, parse_query("FORM=PAINTING")) == _expected(rows, lambda r: r["FORM"] == "painting")
    assert count(conn, parse_query("FORM=painting TYPE=portrait,landscape SCHOOL!=Italian,French")) == _expected(
        rows, lambda r: r["FORM"] == "painting" and r["TYPE"] in ("portrait", "landscape")
        and r["SCHOOL"] not in ("Italian", "French"))
    # exact, not substring; case-insensitive beyond ASCII
    assert count(conn, parse_query("TYPE=port")) == 0
    koszegi = _expected(rows, lambda r: r["AUTHOR"] == "KÕSZEGI, Bálint")
    assert koszegi and count(conn, parse_query('AUTHOR="kõszegi, bálint"')) == koszegi
    assert count(conn, parse_query('AUTHOR="sz?nyi, istván"')) == 10  # '?' is an ordinary character
    assert select_ids(conn, parse_query("ID=p/painter00/work0")) == ["p/painter00/work0"]


def test_count_by(conn, rows):
    groups = dict(count_by(conn, parse_query("FORM=painting"), "type"))
    assert groups == {t: _expected(rows, lambda r, t=t: r["FORM"] == "painting" and r["TYPE"] == t) for t in groups}
    assert sum(groups.values()) == _expected(rows, lambda r: r["FORM"] == "painting")


def test_cli_count_csv_json(capsys, monkeypatch, data_dir, rows):
    code, out, _ = run_cli(capsys, monkeypatch, "wga", "query", "FORM=painting TYPE=portrait", "--count",
                           "--data-dir", str(data_dir))
    assert code == 0 and int(out) == _expected(rows, lambda r: r["FORM"] == "painting" and r["TYPE"] == "portrait")
    code, out, _ = run_cli(capsys, monkeypatch, "wga", "query", "TYPE=still-life", "--format", "csv",
                           "--data-dir", str(data_dir))
    got = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(got) == _expected(rows, lambda r: r["TYPE"] == "still-life")
    assert {r["TITLE"] for r in got} <= {r["TITLE"] for r in rows} and "IMAGE_URL" in got[0]
    code, out, _ = run_cli(capsys, monkeypatch, "wga", "query", 'AUTHOR="AACHEN, Hans von"', "--format", "json",
                           "--columns", "id,date", "--limit", "2", "--data-dir", str(data_dir))
    assert code == 0 and json.loads(out) == [{"ID": "p/painter00/work0", "DATE": rows[0]["DATE"]},
                                             {"ID": "p/painter00/1/work1", "DATE": rows[1]["DATE"]}]
    code, out, _ = run_cli(capsys, monkeypatch, "wga", "query", "FORM=painting", "--by", "SCHOOL", "--format",
                           "json", "--data-dir", str(data_dir))
    assert code == 0 and sum(json.loads(out).values()) == _expected(rows, lambda r: r["FORM"] == "painting")


def test_cli_errors_and_hints(capsys, monkeypatch, data_dir, tmp_path):
    code, _, err = run_cli(capsys, monkeypatch, "wga", "query", "SCHOL=Dutch", "--data-dir", str(data_dir))
    assert code == 2 and "Did you mean: SCHOOL" in err
    code, out, err = run_cli(capsys, monkeypatch, "wga", "query", "TYPE=portraits", "--count",
                             "--data-dir", str(data_dir))
    assert code == 0 and out.strip() == "0" and "Did you mean: portrait" in err
    code, _, err = run_cli(capsys, monkeypatch, "wga", "query", "--data-dir", str(tmp_path / "empty"))
    assert code == 2 and "run `imagemachines wga catalog` first" in err


def test_data_dir_with_odd_characters(capsys, monkeypatch, data_dir, tmp_path, rows):
    odd = tmp_path / "my data #1 ?%"
    odd.mkdir()
    (odd / "catalog.sqlite").write_bytes((data_dir / "catalog.sqlite").read_bytes())
    code, out, err = run_cli(capsys, monkeypatch, "wga", "query", "--count", "--data-dir", str(odd))
    assert code == 0 and int(out) == len(rows), err


def test_cli_csv_never_hands_a_spreadsheet_a_formula(capsys, monkeypatch, data_dir):
    """A catalog title that a spreadsheet would run, and WGA's '-' for an unknown date, come out as text."""
    import sqlite3

    conn = sqlite3.connect(data_dir / "catalog.sqlite")
    with conn:
        conn.execute("""UPDATE artworks SET TITLE = '=HYPERLINK("http://example.org","x")', DATE = '-'
                        WHERE ID = 'p/painter00/work0'""")
    conn.close()
    code, out, _ = run_cli(capsys, monkeypatch, "wga", "query", "ID=p/painter00/work0", "--format", "csv",
                           "--columns", "id,title,date", "--data-dir", str(data_dir))
    assert code == 0
    assert list(csv.reader(io.StringIO(out))) == [["ID", "TITLE", "DATE"], [
        "p/painter00/work0", '\'=HYPERLINK("http://example.org","x")', "'-"]]
    code, out, _ = run_cli(capsys, monkeypatch, "wga", "query", "ID=p/painter00/work0", "--by", "DATE",
                           "--format", "csv", "--data-dir", str(data_dir))
    assert list(csv.reader(io.StringIO(out))) == [["DATE", "count"], ["'-", "1"]]
