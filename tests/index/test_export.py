"""`imagemachines export`: the painting × unit table with metadata, as CSV (spreadsheet-safe) and Parquet."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

from imagemachines.cli import app
from imagemachines.csvfiles import neutral
from imagemachines.errors import UserError
from imagemachines.index import build_index, open_index
from imagemachines.index.export import export_table

runner = CliRunner()


@pytest.fixture
def index(blobnet, collection, tmp_path):
    meta = tmp_path / "meta.csv"
    hostile = ["=HYPERLINK(\"http://x\")", "+1+2", "@SUM(A1)", "-2+3", "-12.5", "\tTab", "Plain"]
    rows = [(p, hostile[i % len(hostile)]) for i, (p, _) in enumerate(collection.red)]
    meta.write_text("path,title\n" + "".join(f'"{p}","{t.replace(chr(34), chr(34) * 2)}"\n' for p, t in rows))
    return open_index(build_index(blobnet, collection.root, tmp_path / "idx", k=3, metadata=meta, progress=False))


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_csv_has_a_row_per_painting_with_metadata_and_each_units_values(index, collection, tmp_path):
    out = export_table(index, tmp_path / "table.csv", ["features.2", "logits"], values="both", progress=False)
    rows = read_csv(out)
    assert len(rows) == index.n_images == 16
    assert list(rows[0])[:5] == ["image_id", "path", "image_width", "image_height", "title"]
    assert list(rows[0])[5:] == ["features.2:0", "features.2:0 mean", "features.2:1", "features.2:1 mean",
                                 "logits:0", "logits:0 mean", "logits:1", "logits:1 mean"]
    maxima, pooled = np.asarray(index.maxima("features.2"), np.float32), np.asarray(index.pooled("features.2"))
    for row in rows:
        i = int(row["image_id"])
        info = index.image(i)
        assert row["path"] == info.path and (row["image_width"], row["image_height"]) == (str(info.width),
                                                                                          str(info.height))
        assert info.width == 96 and 64 <= info.height <= 68
        assert float(row["features.2:1"]) == pytest.approx(float(maxima[i, 1]), rel=1e-5)
        assert float(row["features.2:1 mean"]) == pytest.approx(float(pooled[i, 1]), rel=1e-3)
    # the values are the index's own: each unit's top example is the row with the highest value
    best = max(rows, key=lambda r: float(r["features.2:0"]))
    assert int(best["image_id"]) == index.examples("features.2", 0, k=1)[0].image_id
    assert best["path"] == collection.red[0][0]


def test_csv_cells_never_run_as_formulas_but_numbers_stay_numbers(index, tmp_path):
    rows = read_csv(export_table(index, tmp_path / "t.csv", ["features.2"], units="0", progress=False))
    titles = {r["title"] for r in rows if r["title"]}
    # (the metadata reader strips the tab of "\tTab"; a tab that reaches a cell is quoted, below)
    assert titles == {"'=HYPERLINK(\"http://x\")", "'+1+2", "'@SUM(A1)", "'-2+3", "-12.5", "Tab"}
    assert neutral("\tTab") == "'\tTab" and neutral("\rx") == "'\rx"
    assert neutral("-3.5e2") == "-3.5e2" and neutral("Plain") == "Plain"
    assert neutral("") == "" and neutral("- list") == "'- list"
    assert list(rows[0]) == ["image_id", "path", "image_width", "image_height", "title", "features.2:0"]
    assert any(float(r["features.0:0"]) < 0 for r in read_csv(export_table(
        index, tmp_path / "n.csv", ["features.0"], units="0", progress=False)))  # negative values unquoted


def test_parquet_holds_the_same_table_with_types(index, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = export_table(index, tmp_path / "t.parquet", ["features.2"], values="max", progress=False)
    table = pq.read_table(out)
    assert table.num_rows == 16 and table.column_names[-2:] == ["features.2:0", "features.2:1"]
    assert str(table.schema.field("features.2:0").type) == "float" and str(table.schema.field("image_id").type) == \
        "int64"
    assert table.schema.metadata[b"ranking"] == b"interior"
    csv_rows = read_csv(export_table(index, tmp_path / "t.csv", ["features.2"], progress=False))
    assert table.column("path").to_pylist() == [r["path"] for r in csv_rows]
    assert table.column("title").to_pylist() == [index.image(i).meta.get("title", "") for i in range(16)]  # as is
    np.testing.assert_allclose(table.column("features.2:1").to_numpy(), [float(r["features.2:1"]) for r in csv_rows],
                               rtol=1e-5)


def test_blocks_of_rows_give_the_same_table(index, tmp_path, monkeypatch):
    from imagemachines.index import export

    whole = (tmp_path / "whole.csv")
    export_table(index, whole, ["features.2", "features.0"], values="both", progress=False)
    monkeypatch.setattr(export, "BLOCK", 3)
    parts = export_table(index, tmp_path / "parts.csv", ["features.2", "features.0"], values="both", progress=False)
    assert parts.read_text(encoding="utf-8") == whole.read_text(encoding="utf-8")


def test_bad_requests_are_refused_clearly(index, tmp_path, blobnet, collection):
    with pytest.raises(UserError, match="ending in .csv or .parquet"):
        export_table(index, tmp_path / "t.xlsx", ["features.2"], progress=False)
    with pytest.raises(UserError, match="no layer 'features.9'"):
        export_table(index, tmp_path / "t.csv", ["features.9"], progress=False)
    with pytest.raises(UserError, match="--values 'median'"):
        export_table(index, tmp_path / "t.csv", ["features.2"], values="median", progress=False)
    with pytest.raises(UserError, match="out of range"):
        export_table(index, tmp_path / "t.csv", ["features.2"], units="0-5", progress=False)
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        export_table(index, tmp_path / "dir.csv", ["features.2"], progress=False)
    lean = open_index(build_index(blobnet, collection.root, tmp_path / "lean", k=2, pooled=False, progress=False))
    with pytest.raises(UserError, match="--no-pooled"):
        export_table(lean, tmp_path / "t.csv", ["features.2"], values="mean", progress=False)
    assert not (tmp_path / "t.csv").exists()


def test_the_export_command(index, tmp_path):
    out = tmp_path / "cmd.csv"
    result = runner.invoke(app, ["export", str(index.path), "--layer", "features.2,logits", "--out", str(out),
                                 "--units", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(out)
    assert list(read_csv(out)[0])[-2:] == ["features.2:1", "logits:1"]
    missing = runner.invoke(app, ["export", str(index.path), "--out", str(out)])
    assert missing.exit_code != 0 and "--layer" in missing.output
