"""CSV cells that a spreadsheet would run as formulas are written as text, plain numbers stay numbers, the
project's readers take the mark off again, and no CSV writer in the package bypasses the helper."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from imagemachines import csvfiles
from imagemachines.csvfiles import NUMBER, TRIGGERS, neutral, restore

SRC = Path(__file__).resolve().parents[1] / "src" / "imagemachines"
cells = st.text(alphabet=st.sampled_from(["=", "+", "-", "@", "\t", "\r", "'", "1", ".", "e", "a", " ", "\n",
                                          '"', ",", "\uff1d"]), max_size=8) | st.text(max_size=12)


@given(cells)
@example("=HYPERLINK(\"http://example.org\",\"click\")")
@example("-2+3+cmd|' /C calc'!A0")
@example("'=x")
@example("'s-Hertogenbosch")
def test_no_written_cell_runs_and_every_cell_reads_back(text):
    written = neutral(text)
    assert not written.startswith(TRIGGERS) or NUMBER.fullmatch(written)
    assert restore(written) == text


@given(st.lists(st.tuples(cells, cells), max_size=5))
def test_rows_survive_a_real_csv_round_trip(rows):
    buf = io.StringIO()
    w = csvfiles.dict_writer(buf, fieldnames=["a", "=b"])
    w.writeheader()
    w.writerows({"a": x, "=b": y} for x, y in rows)
    back = list(csv.reader(io.StringIO(buf.getvalue(), newline="")))
    assert back[0] == ["a", "'=b"]
    assert [[restore(c) for c in r] for r in back[1:]] == [list(r) for r in rows]
    for r in back:
        assert all(not c.startswith(TRIGGERS) or NUMBER.fullmatch(c) for c in r)


def test_numbers_stay_numbers_and_text_that_would_run_becomes_text():
    buf = io.StringIO()
    w = csvfiles.writer(buf)
    w.writerow([-1.5, "-1.5", "-0.25", "+3", "1e-05", "-", "=1+1", "@SUM(A1)", "\t=1", "\r=1", "-1+1", None, 7])
    assert buf.getvalue() == "-1.5,-1.5,-0.25,+3,1e-05,'-,'=1+1,'@SUM(A1),'\t=1,\"'\r=1\",'-1+1,,7\r\n"


def test_the_gallery_reads_a_subset_csv_as_it_was_before_it_was_written(tmp_path):
    from imagemachines.train.gallery import Metadata

    (tmp_path / "a.jpg").write_bytes(b"")
    with open(tmp_path / "subset.csv", "w", newline="", encoding="utf-8") as f:
        w = csvfiles.dict_writer(f, ["path", "TITLE", "DATE"])
        w.writeheader()
        w.writerow({"path": "a.jpg", "TITLE": "=HYPERLINK(1)", "DATE": "-"})
    assert "'=HYPERLINK(1)" in (tmp_path / "subset.csv").read_text()
    assert Metadata(tmp_path / "subset.csv").get(tmp_path / "a.jpg") == {"TITLE": "=HYPERLINK(1)", "DATE": "-"}


def test_every_csv_writer_of_the_package_goes_through_the_helper():
    raw = re.compile(r"\bcsv\.(writer|DictWriter)\b")
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if p.name != "csvfiles.py" and raw.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
