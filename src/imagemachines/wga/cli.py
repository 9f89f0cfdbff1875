"""`imagemachines wga …` commands (catalog, query, download, subset).

Heavy modules (httpx, PIL, xlrd) are imported inside the commands so that ``--help`` stays instant.
"""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)

DataDir = Annotated[str | None, typer.Option(
    "--data-dir", help="WGA data folder [default: $IMAGEMACHINES_DATA_DIR/wga, else the user data dir].",
    show_default=False)]
BaseUrl = Annotated[str | None, typer.Option(
    "--base-url", help="WGA server or mirror [env IMAGEMACHINES_WGA_BASE_URL; default https://www.wga.hu].",
    show_default=False)]
PAPER_QUERY = "FORM=painting TYPE=portrait,landscape,still-life"


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


@app.command()
def catalog(
    source: Annotated[str | None, typer.Option(
        "--source", help="URL or file: data_xls.zip, data_txt.zip, catalog.xls or catalog.csv "
                         "[default: <base-url>/database/download/data_xls.zip].", show_default=False)] = None,
    data_dir: DataDir = None,
    base_url: BaseUrl = None,
) -> None:
    """Download (or read) the WGA catalog and store it in the data folder, one row per artwork."""
    from rich.table import Table

    from imagemachines.wga import paths
    from imagemachines.wga.catalog import connect, import_catalog
    from imagemachines.wga.query import count_by, parse_query
    from imagemachines.wga.terms import TERMS, user_agent

    root = paths.data_dir(data_dir)
    src = source or paths.default_catalog_source(paths.base_url(base_url))
    err = _console(stderr=True)
    err.print(f"[dim]{TERMS}[/]")
    with err.status(f"reading {src} …"):
        summary = import_catalog(src, root, user_agent())
    out = _console()
    enc = f", {summary.encoding}" if summary.encoding else ""
    sep = f", separator {summary.delimiter!r}" if summary.delimiter else ""
    out.print(f"[bold]{summary.rows:,}[/] artworks from {summary.member} ({summary.fmt}{enc}{sep}) "
              f"stored in {summary.path}")
    if summary.skipped:
        out.print(f"[yellow]{len(summary.skipped)} rows skipped[/], e.g. " + "; ".join(summary.skipped[:3]))
    if summary.duplicates:
        out.print(f"[yellow]{summary.duplicates} rows repeat an earlier artwork's URL and were kept once.[/]")
    conn = connect(summary.path, readonly=True)
    try:
        table = Table("FORM", "artworks", title="By form")
        for value, n in count_by(conn, parse_query(""), "FORM"):
            table.add_row(value, f"{n:,}")
    finally:
        conn.close()
    out.print(table)


@app.command()
def query(
    text: Annotated[str, typer.Argument(
        metavar="QUERY", help='e.g. "FORM=painting TYPE=portrait,landscape SCHOOL!=Italian"; empty = all.')] = "",
    count: Annotated[bool, typer.Option("--count", help="Print only the number of matching artworks.")] = False,
    by: Annotated[str | None, typer.Option("--by", help="Count matches per value of this column.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    limit: Annotated[int | None, typer.Option(
        "--limit", help="At most this many rows [default: 20 for a table, all for csv/json].",
        show_default=False)] = None,
    columns: Annotated[str | None, typer.Option(
        "--columns", help="Comma-separated columns to show [default: table: ID AUTHOR TITLE DATE TYPE SCHOOL; "
                          "csv/json: all].", show_default=False)] = None,
    data_dir: DataDir = None,
) -> None:
    """Select artworks with the query language: count them, or print them as a table, CSV or JSON."""
    import json
    import sys

    from imagemachines import csvfiles
    from imagemachines.errors import UserError
    from imagemachines.wga import paths
    from imagemachines.wga.catalog import ALL_COLUMNS, open_catalog
    from imagemachines.wga.query import column_name, count_by, parse_query, select_rows, unknown_values
    from imagemachines.wga.query import count as count_rows

    if fmt not in ("table", "csv", "json"):
        raise UserError(f"--format {fmt!r}: use table, csv or json.")
    q = parse_query(text)
    cols = [column_name(c.strip()) for c in columns.split(",") if c.strip()] if columns else (
        ["ID", "AUTHOR", "TITLE", "DATE", "TYPE", "SCHOOL"] if fmt == "table" else list(ALL_COLUMNS))
    conn = open_catalog(paths.data_dir(data_dir))
    try:
        n = count_rows(conn, q)
        if n == 0:
            for hint in unknown_values(conn, q):
                _console(stderr=True).print(f"[yellow]hint:[/] {hint}")
        if count:
            print(n)
            return
        if by:
            groups = count_by(conn, q, by)
            if fmt == "json":
                print(json.dumps(dict(groups), ensure_ascii=False, indent=1))
            elif fmt == "csv":
                w = csvfiles.writer(sys.stdout)
                w.writerow([column_name(by), "count"])
                w.writerows(groups)
            else:
                from rich.table import Table

                table = Table(column_name(by), "artworks", title=f"{n:,} artworks")
                for value, k in groups:
                    table.add_row(value, f"{k:,}")
                _console().print(table)
            return
        lim = limit if limit is not None else (20 if fmt == "table" else None)
        rows = [{c: r[c] for c in cols} for r in select_rows(conn, q, lim)]
    finally:
        conn.close()
    if fmt == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    elif fmt == "csv":
        w = csvfiles.dict_writer(sys.stdout, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    else:
        from rich.table import Table

        table = Table(*cols, title=f"{n:,} artworks" + (f" (first {len(rows)})" if len(rows) < n else ""))
        for r in rows:
            table.add_row(*(r[c] for c in cols))
        _console().print(table)


@app.command()
def download(
    text: Annotated[str, typer.Argument(
        metavar="QUERY", help=f'Artworks to download [default: the paper\'s "{PAPER_QUERY}"; "" = all].',
        show_default=False)] = PAPER_QUERY,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Parallel connections.")] = 4,
    rate: Annotated[float, typer.Option("--rate", help="Requests per second, all connections together "
                                                      "(0 = no limit: only for your own mirror).")] = 2.0,
    variant: Annotated[str, typer.Option("--variant", help="art (full), detail or preview.")] = "art",
    max_side: Annotated[int | None, typer.Option(
        "--max-side", help="Store a copy downscaled to at most this many pixels per side.")] = None,
    retries: Annotated[int, typer.Option("--retries", help="Retries per image on timeouts, 5xx, 429, resets.")] = 5,
    backoff: Annotated[float, typer.Option("--backoff", help="Seconds before the first retry (doubles).")] = 1.0,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request.")] = 30.0,
    retry_missing: Annotated[bool, typer.Option(
        "--retry-missing", help="Also try again images the server reported missing (404).")] = False,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Re-hash files already downloaded and fetch again those that changed.")] = False,
    max_bytes: Annotated[int, typer.Option(
        "--max-bytes", help="Largest image accepted, in bytes (larger ones fail).")] = 50_000_000,
    allow_redirect_host: Annotated[list[str] | None, typer.Option(
        "--allow-redirect-host", help="Also follow redirects to this host (repeatable); others are refused.")] = None,
    base_url: BaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Download the images of the selected artworks: polite, resumable, never a partial file."""
    from imagemachines.wga import paths
    from imagemachines.wga.catalog import open_catalog
    from imagemachines.wga.download import DownloadOptions
    from imagemachines.wga.download import download as run_download
    from imagemachines.wga.query import parse_query, select_ids
    from imagemachines.wga.terms import TERMS

    root = paths.data_dir(data_dir)
    base = paths.base_url(base_url)
    options = DownloadOptions(concurrency=concurrency, rate=rate, variant=variant, max_side=max_side,
                              retries=retries, backoff=backoff, timeout=timeout, retry_missing=retry_missing,
                              verify=verify, max_bytes=max_bytes,
                              allow_redirect_hosts=tuple(allow_redirect_host or ()))
    options.validate()
    q = parse_query(text)
    conn = open_catalog(root)
    try:
        ids = select_ids(conn, q)
    finally:
        conn.close()
    err = _console(stderr=True)
    err.print(f"[bold]Terms:[/] {TERMS}")
    err.print(f"{len(ids):,} artworks selected; images from {base} into {paths.store_dir(root, '')}")
    report = run_download(root, ids, base, options)
    c = report.counts
    out = _console()
    out.print(f"[bold]{c.get('ok', 0):,}[/] of {report.selected:,} images ready in "
              f"{paths.store_dir(root, report.store)} — fetched {report.fetched:,} now "
              f"({report.bytes / 1e6:.1f} MB in {report.elapsed:.1f} s), {report.already:,} were already there"
              + (f", {report.adopted} recovered from an interrupted run" if report.adopted else "")
              + f"; missing on the server: {c.get('missing', 0):,}; failed: {c.get('failed', 0):,}"
              + (f"; not tried yet: {c['pending']:,}." if c.get("pending") else "."))
    for reason, k in report.reasons.most_common(5):
        out.print(f"  [red]{k:,} failed:[/] {reason}")
    if report.interrupted:
        out.print("Interrupted: run the same command again to go on where this run stopped.")
        raise typer.Exit(130)
    if report.stopped:
        _console(stderr=True).print(f"[bold red]Error:[/] {report.stopped}")
        raise typer.Exit(1)
    if report.failed:
        out.print("Run the same command again to retry the failures.")
        raise typer.Exit(1)


@app.command()
def subset(
    name: Annotated[str, typer.Argument(help="Subset name (stored in <data-dir>/subsets/NAME) or a folder path.")],
    classes: Annotated[list[str] | None, typer.Option(
        "--class", help='NAME=QUERY, repeatable [default: the paper\'s portrait, landscape, still-life '
                        'paintings].', show_default=False)] = None,
    balance: Annotated[bool, typer.Option("--balance", help="Down-sample every class to the smallest.")] = False,
    val: Annotated[float, typer.Option("--val", help="Fraction for validation.")] = 0.1,
    test: Annotated[float, typer.Option("--test", help="Fraction for testing.")] = 0.1,
    group_by: Annotated[str | None, typer.Option(
        "--group-by", help="Keep all artworks with the same value of this column (e.g. AUTHOR) in one split.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for balancing and splitting.")] = 0,
    overlap: Annotated[str, typer.Option(
        "--overlap", help="An artwork in several classes: error, first (first class wins) or drop.")] = "error",
    variant: Annotated[str, typer.Option("--variant", help="Which download to use: art, detail, preview.")] = "art",
    max_side: Annotated[int | None, typer.Option("--max-side", help="Use the copies downloaded with "
                                                                    "this --max-side.")] = None,
    link: Annotated[str, typer.Option("--link", help="auto (hard, else symbolic, else copy), hard, symbolic "
                                                     "or copy.")] = "auto",
    min_images: Annotated[int, typer.Option("--min-images", help="Warn about classes with fewer images.")] = 20,
    force: Annotated[bool, typer.Option("--force", help="Rebuild an existing subset of that name.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Build a labelled ImageFolder tree NAME/{train,val,test}/<class>/ plus subset.csv from downloaded images."""
    from rich.table import Table

    from imagemachines.wga import paths
    from imagemachines.wga.subset import PAPER_CLASSES, SubsetOptions, build_subset, parse_class_specs

    opts = SubsetOptions(classes=parse_class_specs(classes) if classes else dict(PAPER_CLASSES),
                         balance=balance, val=val, test=test, group_by=group_by, seed=seed, overlap=overlap,
                         variant=variant, max_side=max_side, link=link, force=force, min_images=min_images)
    report = build_subset(paths.data_dir(data_dir), name, opts)
    splits = [s for s in ("train", "val", "test") if {"train": 1, "val": val, "test": test}[s] > 0]
    table = Table("class", *splits, "total", "not downloaded", title=str(report.path))
    for cls, n in report.counts.items():
        table.add_row(cls, *(f"{n.get(s, 0):,}" for s in splits), f"{sum(n.values()):,}",
                      f"{report.not_downloaded[cls]:,}")
    out = _console()
    out.print(table)
    for w in report.warnings:
        _console(stderr=True).print(f"[yellow]warning:[/] {w}")
    out.print(f"files: {', '.join(f'{k} {v:,}' for k, v in report.links.items())}; "
              f"list: {report.path / 'subset.csv'}; overview: {report.path / 'index.html'}")
