"""`wga catalog`: from the (local) server, from files, and failures that keep the old catalog."""

from __future__ import annotations

import pytest
import wgafake
from clirun import run_cli

from imagemachines.wga.catalog import catalog_meta, open_catalog
from imagemachines.wga.query import parse_query, select_rows


def _stored(root):
    conn = open_catalog(root)
    try:
        return select_rows(conn, parse_query("")), catalog_meta(conn)
    finally:
        conn.close()


def test_default_source_is_the_servers_xls_zip(capsys, monkeypatch, server, tmp_path, rows, keys):
    pytest.importorskip("xlwt")
    monkeypatch.setenv("IMAGEMACHINES_WGA_BASE_URL", server.url)
    code, out, err = run_cli(capsys, monkeypatch, "wga", "catalog", "--data-dir", str(tmp_path / "d"))
    assert code == 0, err
    assert server.requests["/database/download/data_xls.zip"] == 1
    assert any(ua.startswith("imagemachines/") for ua in server.user_agents)
    assert "educational and personal use" in err and f"{len(rows):,} artworks" in out
    stored, meta = _stored(tmp_path / "d")
    assert [r["ID"] for r in stored] == keys
    assert [{c: r[c] for c in wgafake.COLUMNS} for r in stored] == rows
    assert stored[0]["IMAGE_URL"] == f"{wgafake.HOST}/art/{keys[0]}.jpg"
    assert meta["format"] == "xls" and meta["source"].endswith("data_xls.zip")


def test_csv_zip_from_url_and_comma_csv_from_file(capsys, monkeypatch, server, tmp_path, rows):
    root = tmp_path / "d"
    code, _, err = run_cli(capsys, monkeypatch, "wga", "catalog", "--source",
                           f"{server.url}/database/download/data_txt.zip", "--data-dir", str(root))
    assert code == 0, err
    stored, meta = _stored(root)
    assert [{c: r[c] for c in wgafake.COLUMNS} for r in stored] == rows
    assert (meta["format"], meta["encoding"], meta["delimiter"]) == ("csv", "cp1252", ";")
    path = tmp_path / "catalog.csv"
    path.write_bytes(wgafake.to_csv(rows[:50], delimiter=","))
    code, out, err = run_cli(capsys, monkeypatch, "wga", "catalog", "--source", str(path), "--data-dir", str(root))
    assert code == 0, err
    stored, meta = _stored(root)
    assert len(stored) == 50 and meta["delimiter"] == ","


def test_failed_import_keeps_the_previous_catalog(capsys, monkeypatch, server, data_dir, tmp_path, rows):
    before = (data_dir / "catalog.sqlite").read_bytes()
    code, _, err = run_cli(capsys, monkeypatch, "wga", "catalog", "--source", f"{server.url}/nothing-here.zip",
                           "--data-dir", str(data_dir))
    assert code == 2 and "HTTP 404" in err
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"AUTHOR;TITLE\r\na;b\r\n")
    code, _, err = run_cli(capsys, monkeypatch, "wga", "catalog", "--source", str(bad), "--data-dir", str(data_dir))
    assert code == 2 and "lacks the column(s) BORN-DIED" in err
    code, _, err = run_cli(capsys, monkeypatch, "wga", "catalog", "--source", str(tmp_path / "nope.zip"),
                           "--data-dir", str(data_dir))
    assert code == 2 and "neither an http(s) URL nor a file" in err
    assert (data_dir / "catalog.sqlite").read_bytes() == before
    assert sorted(p.name for p in data_dir.iterdir()) == ["catalog.sqlite"]  # no temporary files left


def test_rows_with_foreign_urls_are_reported(capsys, monkeypatch, tmp_path, rows):
    broken = [dict(r) for r in rows[:5]]
    broken[2]["URL"] = "https://www.wga.hu/frames-e.html"
    path = tmp_path / "catalog.csv"
    path.write_bytes(wgafake.to_csv(broken + [rows[0]]))  # plus a repeated artwork
    code, out, err = run_cli(capsys, monkeypatch, "wga", "catalog", "--source", str(path), "--data-dir",
                             str(tmp_path / "d"))
    assert code == 0, err
    assert "1 rows skipped" in out and "no /html/ folder" in out and "kept once" in out
    stored, meta = _stored(tmp_path / "d")
    assert len(stored) == 4 and meta["skipped"] == "1" and meta["duplicates"] == "1"
