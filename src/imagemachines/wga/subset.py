"""Build a labelled ImageFolder tree ``<name>/{train,val,test}/<class>/`` from downloaded images.

Files are hard links to the downloaded images (symbolic links, then copies, where hard links are impossible);
``subset.csv`` lists every image with its split, class and full catalog metadata, ``subset.json`` the
parameters, and ``index.html`` shows counts and a few images per class. The tree is built under a temporary
name and renamed into place, so a failed build leaves any earlier subset intact.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from imagemachines import csvfiles
from imagemachines.errors import UserError
from imagemachines.fileio import link_file
from imagemachines.train.splitting import SPLITS, balance, check_fractions, split_grouped, split_random
from imagemachines.wga.catalog import ALL_COLUMNS, open_catalog
from imagemachines.wga.manifest import Manifest
from imagemachines.wga.paths import SUBSETS, manifest_db, store_dir, store_name
from imagemachines.wga.query import parse_query, select_rows, unknown_values

PAPER_CLASSES = {
    "portrait": "FORM=painting TYPE=portrait",
    "landscape": "FORM=painting TYPE=landscape",
    "still-life": "FORM=painting TYPE=still-life",
}
PAPER_QUERY = "FORM=painting TYPE=portrait,landscape,still-life"
OVERLAP_RULES = ("error", "first", "drop")
LINK_KINDS = ("auto", "hard", "symbolic", "copy")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass
class SubsetOptions:
    classes: dict[str, str] = field(default_factory=lambda: dict(PAPER_CLASSES))
    balance: bool = False
    val: float = 0.1
    test: float = 0.1
    group_by: str | None = None
    seed: int = 0
    overlap: str = "error"
    variant: str = "art"
    max_side: int | None = None
    link: str = "auto"
    force: bool = False
    min_images: int = 20


@dataclass
class SubsetReport:
    path: Path
    counts: dict[str, Counter]
    not_downloaded: dict[str, int]
    overlapping: int
    links: Counter
    warnings: list[str]


def parse_class_specs(specs: list[str]) -> dict[str, str]:
    """``name=QUERY`` options as an ordered dict; names must be usable as folder names."""
    classes: dict[str, str] = {}
    for spec in specs:
        name, sep, query = spec.partition("=")
        name = name.strip()
        if not sep or not query.strip():
            raise UserError(f"--class {spec!r} needs the form NAME=QUERY, e.g. "
                            f"--class portrait=\"FORM=painting TYPE=portrait\".")
        if not _NAME.match(name):
            raise UserError(f"class name {name!r} must be letters, digits, '_', '-' or '.' (a folder name).")
        if name in classes:
            raise UserError(f"class {name!r} is given twice; give each class once.")
        parse_query(query)  # fail early on a bad query
        classes[name] = query.strip()
    return classes


def subset_path(name: str, root: Path) -> Path:
    """A plain NAME lives in ``<data>/subsets/NAME``; anything with a path separator is taken as a path."""
    if _NAME.match(name):
        return root / SUBSETS / name
    if "/" in name or os.sep in name:
        return Path(name).expanduser().resolve()
    raise UserError(f"subset name {name!r}: use letters, digits, '_', '-', '.' or give a folder path.")


_ORDERS = {"auto": ("hard", "symbolic", "copy"), "hard": ("hard",), "symbolic": ("symbolic",), "copy": ("copy",)}


def _link(src: Path, dst: Path, kind: str, used: Counter) -> None:
    used[link_file(src, dst, _ORDERS[kind])] += 1


def _select(root: Path, opts: SubsetOptions, warnings: list[str]):
    """Per class: matching rows (id -> metadata) after the overlap rule; and the overlap count."""
    conn = open_catalog(root)
    try:
        rows_by_class: dict[str, dict[str, dict]] = {}
        for cls, text in opts.classes.items():
            query = parse_query(text)
            rows = {r["ID"]: r for r in select_rows(conn, query)}
            if not rows:
                hints = " ".join(unknown_values(conn, query))
                raise UserError(f"class {cls!r}: the query {text!r} matches no artwork. {hints}".strip())
            rows_by_class[cls] = rows
    finally:
        conn.close()
    owners: dict[str, list[str]] = defaultdict(list)
    for cls, rows in rows_by_class.items():
        for i in rows:
            owners[i].append(cls)
    shared = {i: c for i, c in owners.items() if len(c) > 1}
    if shared and opts.overlap == "error":
        example = next(iter(shared.items()))
        raise UserError(f"{len(shared)} artworks match more than one class (e.g. {example[0]} in "
                        f"{' and '.join(example[1])}); make the queries exclusive, or pass --overlap first "
                        f"(the class listed first keeps it) or --overlap drop (leave such artworks out).")
    for i, classes in shared.items():
        keep = classes[0] if opts.overlap == "first" else None
        for cls in classes:
            if cls != keep:
                del rows_by_class[cls][i]
    if shared:
        warnings.append(f"{len(shared)} artworks matched several classes; rule --overlap {opts.overlap}.")
    return rows_by_class, len(shared)


def build_subset(root: Path, name: str, opts: SubsetOptions) -> SubsetReport:
    """Build (or with ``force`` rebuild) the subset *name*; see the module docstring."""
    if opts.overlap not in OVERLAP_RULES:
        raise UserError(f"--overlap {opts.overlap!r}: use one of {', '.join(OVERLAP_RULES)}.")
    if opts.link not in LINK_KINDS:
        raise UserError(f"--link {opts.link!r}: use one of {', '.join(LINK_KINDS)}.")
    if not opts.classes:
        raise UserError("give at least one --class NAME=QUERY (or none for the paper's three classes).")
    fractions = check_fractions(opts.val, opts.test)
    target = subset_path(name, root)
    if target.exists() and not opts.force:
        raise UserError(f"subset {target} already exists; pass --force to rebuild it (the downloaded images "
                        f"are kept) or choose another name.")
    if target.exists() and not (target / "subset.csv").is_file():
        raise UserError(f"{target} exists and is not a subset built by imagemachines (no subset.csv); "
                        f"choose another name so nothing there is overwritten.")
    if opts.group_by:
        from imagemachines.wga.query import column_name

        opts.group_by = column_name(opts.group_by)

    warnings: list[str] = []
    rows_by_class, overlapping = _select(root, opts, warnings)
    store = store_name(opts.variant, opts.max_side)
    folder = store_dir(root, store)
    if not manifest_db(root).is_file():
        raise UserError(f"nothing is downloaded in {root} yet: run `imagemachines wga download \"QUERY\"` "
                        f"for the classes first.")
    with Manifest(manifest_db(root), readonly=True) as manifest:
        ok = {it.id: it for it in manifest.items(store, states=("ok",))}
    by_class: dict[str, list[str]] = {}
    not_downloaded: dict[str, int] = {}
    for cls, rows in rows_by_class.items():
        have = [i for i in rows if i in ok and (folder / ok[i].path).is_file()]
        not_downloaded[cls] = len(rows) - len(have)
        if not have:
            raise UserError(f"class {cls!r}: none of its {len(rows)} artworks is downloaded in store {store!r}; "
                            f"run `imagemachines wga download \"{opts.classes[cls]}\"` first.")
        if len(have) < opts.min_images:
            warnings.append(f"class {cls!r} has only {len(have)} images (fewer than {opts.min_images}).")
        by_class[cls] = have
    missing_total = sum(not_downloaded.values())
    if missing_total:
        warnings.append(f"{missing_total} matching artworks are not downloaded (yet) and are left out: "
                        + ", ".join(f"{c} {n}" for c, n in not_downloaded.items() if n) + ".")
    if opts.balance:
        by_class = balance(by_class, opts.seed)
    if opts.group_by:
        groups = {i: rows_by_class[c][i][opts.group_by].casefold() for c, ids in by_class.items() for i in ids}
        labels = {i: c for c, ids in by_class.items() for i in ids}
        assignment = split_grouped(groups, fractions, opts.seed, labels)
    else:
        assignment = split_random(by_class, fractions, opts.seed)

    splits = [s for s in SPLITS if fractions[s] > 0]
    counts = {cls: Counter(assignment[i] for i in ids) for cls, ids in by_class.items()}
    for cls, c in counts.items():
        empty = [s for s in splits if not c.get(s)]
        if empty:
            warnings.append(f"class {cls!r} has no image in {', '.join(empty)}; add images or change the fractions.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    links: Counter = Counter()
    records = []
    try:
        for s in splits:
            for cls in by_class:
                (tmp / s / cls).mkdir(parents=True)
        for cls, ids in by_class.items():
            for i in ids:
                rel = Path(assignment[i]) / cls / (i.replace("/", "__") + ".jpg")
                if (tmp / rel).exists():
                    raise UserError(f"two artworks would share the file name {rel.name}; report this catalog "
                                    f"quirk (ids {i!r} and another).")
                _link(folder / ok[i].path, tmp / rel, opts.link, links)
                records.append({"path": rel.as_posix(), "split": assignment[i], "class": cls,
                                **rows_by_class[cls][i], "sha256": ok[i].sha256})
        records.sort(key=lambda r: (SPLITS.index(r["split"]), list(by_class).index(r["class"]), r["ID"]))
        with open(tmp / "subset.csv", "w", newline="", encoding="utf-8") as f:
            writer = csvfiles.dict_writer(f, fieldnames=["path", "split", "class", *ALL_COLUMNS, "sha256"])
            writer.writeheader()
            writer.writerows(records)
        params = {"name": name, "classes": opts.classes, "balance": opts.balance, "val": opts.val,
                  "test": opts.test, "group_by": opts.group_by, "seed": opts.seed, "overlap": opts.overlap,
                  "store": store, "counts": {c: dict(v) for c, v in counts.items()},
                  "not_downloaded": not_downloaded}
        (tmp / "subset.json").write_text(json.dumps(params, indent=2, ensure_ascii=False))
        from imagemachines.wga.report import write_index

        write_index(tmp / "index.html", name, records, counts, splits, warnings)
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return SubsetReport(target, counts, not_downloaded, overlapping, links, warnings)
