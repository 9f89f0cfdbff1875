"""One rule for writing a percentile, on every page and in the CLI (the web interface's copy is checked against
it in tests/serve/test_collection_browser.py): 100 only at the collection's maximum, never rounded up to it."""

from __future__ import annotations

import pytest

from imagemachines.index.records import percentile_label
from imagemachines.report import environment


@pytest.mark.parametrize(("p", "text"), [
    (100.0, "100"), (100.7, "100"), (99.97, ">99.9"), (99.95, ">99.9"), (99.94, "99.9"), (57.25, "57.3"),
    (57.24, "57.2"), (0.25, "0.3"), (0.05, "0.1"), (0.049, "<0.1"), (1e-9, "<0.1"), (0.0, "0"), (-3.0, "0"),
])
def test_the_rule(p, text):
    assert percentile_label(p) == text


def test_pages_write_it_through_the_template_filter():
    template = environment().from_string("{{ p|percentile }}th pct")
    assert [template.render(p=p) for p in (100.0, 99.96, 12.34)] == ["100th pct", "&gt;99.9th pct", "12.3th pct"]
