"""``index.html`` of a subset: counts per class and split, and a strip of sample images per class."""

from __future__ import annotations

from collections import Counter
from html import escape
from pathlib import Path

SAMPLES = 12


def write_index(path: Path, name: str, records: list[dict], counts: dict[str, Counter], splits: list[str],
                warnings: list[str]) -> None:
    """Write a self-contained HTML page (images linked relatively, so the folder can be moved)."""
    head = "".join(f"<th>{escape(s)}</th>" for s in splits)
    body = "".join(
        f"<tr><th>{escape(c)}</th>" + "".join(f"<td>{n.get(s, 0)}</td>" for s in splits)
        + f"<td>{sum(n.values())}</td></tr>" for c, n in counts.items())
    strips = []
    for cls in counts:
        sample = [r for r in records if r["class"] == cls][:SAMPLES]
        figs = "".join(
            f'<figure><img loading="lazy" src="{escape(r["path"])}" alt="{escape(r["TITLE"])}">'
            f'<figcaption>{escape(r["AUTHOR"])}<br><i>{escape(r["TITLE"])}</i> ({escape(r["DATE"])})'
            f'</figcaption></figure>' for r in sample)
        strips.append(f"<h2>{escape(cls)}</h2><div class=strip>{figs}</div>")
    notes = "".join(f"<li>{escape(w)}</li>" for w in warnings)
    html = f"""<!doctype html><meta charset="utf-8"><title>{escape(name)}: WGA subset</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:.3em .7em;text-align:right}}.strip{{display:flex;flex-wrap:wrap;gap:.5em}}figure{{margin:0;width:160px;
font-size:.75em}}img{{width:160px;height:160px;object-fit:cover;background:#eee}}</style>
<h1>{escape(name)}</h1><p>Images from the Web Gallery of Art: educational and personal use only, no
redistribution. Every image, with its split, class and metadata, is listed in <a href="subset.csv">subset.csv</a>.</p>
<table><tr><th>class</th>{head}<th>total</th></tr>{body}</table>
{f"<ul>{notes}</ul>" if notes else ""}{"".join(strips)}
"""
    path.write_text(html, encoding="utf-8")
