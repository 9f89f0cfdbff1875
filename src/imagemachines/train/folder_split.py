"""``imagemachines split``: a folder of paintings → ``DIR/{train,val[,test]}/<class>/`` of links, for ``train``.

Classes are the class folders of FOLDER, or a ``--label-column`` of a ``--metadata`` CSV (joined to the images
as ``imagemachines index --metadata`` joins it). Every class is split by the shares (stratified); with
``--group-by`` (e.g. the artist column) all images of one value stay on one side, and identical files (same
sha256) always do. Images Pillow cannot read are reported and left out. The files are symbolic links to the
originals where the filesystem allows (else hard links, else copies: ``--link``); nothing of FOLDER is changed.

``DIR/split.csv`` lists every image with its side, class, original path, sha256 and metadata; ``split.json`` the
settings and what was left out; ``index.html`` shows counts and a strip of images per class and side. The tree is
built under a temporary name and renamed into place: an existing DIR is replaced only when it is a previous
split holding nothing but what that split made, so no file of the user's is ever deleted.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from imagemachines.csvfiles import dict_writer, restore
from imagemachines.errors import UserError, did_you_mean
from imagemachines.fileio import link_file
from imagemachines.train.splitting import SPLITS, check_fractions, limit_per_class, split_grouped

MADE_BY = "imagemachines split"
LIST, SETTINGS, PAGE = "split.csv", "split.json", "index.html"
LINK_ORDERS = {"auto": ("symbolic", "hard", "copy"), "symbolic": ("symbolic",), "hard": ("hard",), "copy": ("copy",)}
CHECK_SIDE = 64  # JPEGs are decoded at a reduced scale for the readability check (the whole stream is read)
STRIP = {"train": 8, "val": 4, "test": 4}  # images per class and side on index.html


@dataclass
class SplitOptions:
    val: float = 0.2
    test: float = 0.0
    seed: int = 0
    metadata: Path | None = None
    label_column: str | None = None
    group_by: str | None = None
    classes: list[str] | None = None
    per_class: int | None = None
    link: str = "auto"
    progress: bool = True
    threads: int | None = None


@dataclass
class SplitReport:
    path: Path
    splits: list[str]
    counts: dict[str, Counter]  # class -> side -> images
    links: Counter  # link kind -> files
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path in FOLDER, reason)
    unlabelled: list[str] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)  # identical files, each set on one side
    spellings: list[list[str]] = field(default_factory=list)  # group values that may be one name spelled apart
    warnings: list[str] = field(default_factory=list)
    replaced: bool = False

    def rows(self) -> list[list[str]]:
        """The summary table: one row per class, then the total; columns: class, each side, total."""
        rows = [[cls, *(str(n.get(s, 0)) for s in self.splits), str(sum(n.values()))]
                for cls, n in self.counts.items()]
        totals = [sum(n.get(s, 0) for n in self.counts.values()) for s in self.splits]
        return [*rows, ["total", *map(str, totals), str(sum(totals))]]

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{escape(h)}</th>" for h in ("class", *self.splits, "total"))
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in self.rows())
        notes = "".join(f"<li>{escape(w)}</li>" for w in self.warnings)
        links = ", ".join(f"{k} {v}" for k, v in self.links.items())
        return (f"<p>{escape(str(self.path))} — files: {escape(links)}</p><table><tr>{head}</tr>{body}</table>"
                + (f"<ul>{notes}</ul>" if notes else ""))


@dataclass
class _Image:
    rel: str  # relative to FOLDER, POSIX
    label: str
    meta: dict[str, str]
    sha256: str = ""


def split_folder(folder: Path, out: Path, opts: SplitOptions | None = None) -> SplitReport:
    """Split the images of *folder* into *out* (see the module doc); returns what was done and left out."""
    opts = opts or SplitOptions()
    fractions = check_fractions(opts.val, opts.test)
    if opts.link not in LINK_ORDERS:
        raise UserError(f"--link {opts.link!r}: use one of {', '.join(LINK_ORDERS)}.")
    if opts.per_class is not None and opts.per_class < 1:
        raise UserError(f"--per-class {opts.per_class}: give at least 1 (or leave it out for all images).")
    folder, out = Path(folder), Path(out)
    _check_folders(folder, out)
    previous = _previous_split(out)

    images, columns, unlabelled = _labelled_images(folder, opts)
    images, unreadable = _check_images(folder, images, opts)
    by_class: dict[str, list[str]] = defaultdict(list)
    for im in images.values():
        by_class[im.label].append(im.rel)
    by_class = {c: by_class[c] for c in sorted(by_class)}
    if opts.per_class:
        by_class = limit_per_class(by_class, opts.per_class, opts.seed)
        images = {r: images[r] for ids in by_class.values() for r in ids}
    if len(by_class) < 2:
        raise UserError(f"{folder} has {len(by_class)} class{'es' if len(by_class) != 1 else ''} with readable "
                        f"images ({', '.join(by_class) or 'none'}); training needs at least two.")

    warnings: list[str] = []
    groups, duplicates = _groups(images, opts.group_by, warnings)
    labels = {r: im.label for r, im in images.items()}
    assignment = split_grouped(groups, fractions, opts.seed, labels)
    splits = [s for s in SPLITS if fractions[s] > 0]
    counts = {cls: Counter(assignment[r] for r in ids) for cls, ids in by_class.items()}
    spellings = _spellings(images, opts.group_by, assignment, warnings) if opts.group_by else []
    for cls, c in counts.items():
        empty = [s for s in splits if not c.get(s)]
        if empty:
            warnings.append(f"class {cls!r} has no image in {', '.join(empty)}"
                            + (" (its artists' images are all on other sides)" if opts.group_by else "")
                            + "; add images or change the shares.")
    if unreadable:
        warnings.append(f"{len(unreadable)} files Pillow cannot read are left out (listed in {SETTINGS}).")
    if unlabelled:
        warnings.append(f"{len(unlabelled)} images have no class and are left out (listed in {SETTINGS}).")
    if duplicates:
        warnings.append(f"{sum(len(d) for d in duplicates)} files are identical copies (same sha256; "
                        f"{len(duplicates)} set{'s' if len(duplicates) > 1 else ''}, listed in {SETTINGS}); each set "
                        "was kept on one side.")

    report = SplitReport(out, splits, counts, Counter(), unreadable, unlabelled, duplicates, spellings, warnings,
                         replaced=previous)
    settings = {"made_by": MADE_BY, "folder": str(folder.resolve()), "val": opts.val, "test": opts.test,
                "seed": opts.seed, "metadata": str(Path(opts.metadata).resolve()) if opts.metadata else None,
                "label_column": opts.label_column, "group_by": opts.group_by, "classes": list(by_class),
                "per_class": opts.per_class, "link": opts.link}
    _write(folder, out, images, assignment, columns, settings, report, opts)
    return report


def _check_folders(folder: Path, out: Path) -> None:
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder. Give a folder of images: one sub-folder per class, or any "
                        "layout with --metadata CSV --label-column COLUMN.")
    if (folder / SETTINGS).is_file() or ((folder / "train").is_dir() and (folder / "val").is_dir()):
        raise UserError(f"{folder} is split already (it has train/ and val/): give it to `imagemachines train` as "
                        "it is, or split the folder of class folders it was made from.")
    src, dst = folder.resolve(), Path(os.path.abspath(out))
    if dst == src or dst.is_relative_to(src) or src.is_relative_to(dst):
        raise UserError(f"--out {out} must be outside {folder} (and not hold it): links inside the folder would be "
                        "found again as images. Choose a folder beside it, e.g. "
                        f"--out {folder.resolve().parent / (folder.resolve().name + '-split')}.")


def _previous_split(out: Path) -> bool:
    """False for a new or empty *out*; True for a previous split that holds only what it made; else an error."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a new or empty folder.")
    if not out.exists() or not any(out.iterdir()):
        return False
    made = _made_files(out)
    if made is None:
        raise UserError(f"--out {out} is not empty and is not a split made by `{MADE_BY}`; nothing in it is "
                        "touched. Give a new or empty folder.")
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if (p.is_symlink() or not p.is_dir()) and rel not in made:
            raise UserError(f"--out {out} is a previous split, but {rel} was not made by it; move that file away "
                            "(replacing the split would delete it) or give another folder.")
    return True


def _made_files(out: Path) -> set[str] | None:
    """The files a previous split in *out* made (from its lists), or None when *out* is not one."""
    try:
        settings = json.loads((out / SETTINGS).read_text(encoding="utf-8"))
        with open(out / LIST, newline="", encoding="utf-8") as f:
            paths = {restore(row["path"]) for row in csv.DictReader(f)}
    except (OSError, ValueError, KeyError, csv.Error):
        return None
    if not isinstance(settings, dict) or settings.get("made_by") != MADE_BY:
        return None
    return paths | {LIST, SETTINGS, PAGE}


def _labelled_images(folder: Path, opts: SplitOptions) -> tuple[dict[str, _Image], list[str], list[str]]:
    """The images of *folder* with a class: {relative path: image}, the metadata columns, the unlabelled paths."""
    from imagemachines.index.metadata import folder_label, metadata_column, read_metadata
    from imagemachines.train.data import list_images

    rels = [p.relative_to(folder).as_posix() for p in list_images(folder)]
    if not rels:
        raise UserError(f"{folder} holds no images (.jpg, .png, .tif, .webp …, searched recursively).")
    columns: list[str] = []
    found: dict[str, dict] = {}
    if opts.metadata is not None:
        columns, found = read_metadata(opts.metadata, folder, rels)
        if opts.label_column:
            opts.label_column = metadata_column(opts.label_column, columns, opts.metadata, "--label-column")
        if opts.group_by:
            opts.group_by = metadata_column(opts.group_by, columns, opts.metadata, "--group-by")
    elif opts.label_column or opts.group_by:
        option = "--label-column" if opts.label_column else "--group-by"
        raise UserError(f"{option} names a column of the metadata CSV: give it with --metadata CSV.")
    images, unlabelled = {}, []
    for rel in rels:
        label = found.get(rel, {}).get(opts.label_column, "") if opts.label_column else folder_label(rel)
        if label:
            images[rel] = _Image(rel, _check_label(label), found.get(rel, {}))
        else:
            unlabelled.append(rel)
    if not images:
        raise UserError(f"{folder} has no images in class folders. Put each class in its own sub-folder, or give "
                        "--metadata CSV --label-column COLUMN to take the classes from a column."
                        if not opts.label_column else
                        f"No image of {folder} has a value in column {opts.label_column!r} of {opts.metadata}.")
    if opts.classes:
        known = sorted({im.label for im in images.values()})
        for cls in opts.classes:
            if cls not in known:
                raise UserError(f"--classes: there is no class {cls!r}.{did_you_mean(cls, known)} The classes are: "
                                f"{', '.join(known)}.")
        images = {r: im for r, im in images.items() if im.label in opts.classes}
    folded = defaultdict(set)
    for im in images.values():
        folded[im.label.casefold()].add(im.label)
    clash = next((sorted(v) for v in folded.values() if len(v) > 1), None)
    if clash:
        raise UserError(f"classes {' and '.join(map(repr, clash))} differ only in case, and some filesystems "
                        "cannot hold both folders; write them one way.")
    return images, columns, unlabelled


def _check_label(label: str) -> str:
    """A class name usable as a folder name, or a clear error."""
    if label in (".", "..") or label.startswith(".") or any(ch in label for ch in '/\\\0:*?"<>|'):
        raise UserError(f"class {label!r} cannot be a folder name (no leading '.', no / \\ : * ? \" < > |); "
                        "rename it in the label column.")
    return label


def inspect_image(path: Path) -> tuple[str, str | None]:
    """(sha256 of the file, None), or (sha256 or "", why Pillow cannot read it)."""
    from PIL import Image

    from imagemachines.index.scan import sha256_file

    try:
        digest = sha256_file(path)
    except OSError as exc:
        return "", f"{type(exc).__name__}: {exc}"
    try:
        with Image.open(path) as im:
            im.draft("RGB", (CHECK_SIDE, CHECK_SIDE))
            im.load()
    except Exception as exc:  # noqa: BLE001 - any decoding failure: report the file, never stop
        return digest, f"{type(exc).__name__}: {exc}"
    return digest, None


def _check_images(folder: Path, images: dict[str, _Image], opts: SplitOptions):
    """Hash and decode every image (threads); returns the readable ones and [(path, reason)] of the others."""
    from tqdm.auto import tqdm

    threads = opts.threads or min(8, os.cpu_count() or 1)
    rels = list(images)
    readable, unreadable = {}, []
    with ThreadPoolExecutor(max_workers=threads) as pool, \
            tqdm(total=len(rels), desc="checking images", unit="img", disable=not opts.progress) as bar:
        for rel, (digest, problem) in zip(rels, pool.map(lambda r: inspect_image(folder / r), rels), strict=True):
            bar.update()
            if problem:
                unreadable.append((rel, problem))
            else:
                images[rel].sha256 = digest
                readable[rel] = images[rel]
    return readable, unreadable


def _groups(images: dict[str, _Image], group_by: str | None, warnings: list[str]):
    """{path: group} for the splitter, and the sets of identical files; identical files share a group."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def own(rel: str) -> str:
        value = images[rel].meta.get(group_by, "") if group_by else ""
        return f"value:{value}" if value else f"file:{rel}"

    by_hash: dict[str, list[str]] = defaultdict(list)
    for rel, im in images.items():
        by_hash[im.sha256].append(rel)
    duplicates = [sorted(rels) for rels in by_hash.values() if len(rels) > 1]
    for rels in duplicates:
        roots = sorted({find(own(r)) for r in rels})
        for other in roots[1:]:
            parent[other] = roots[0]
        if len({images[r].label for r in rels}) > 1:
            warnings.append(f"identical files carry different classes: {', '.join(rels[:3])}; check their labels.")
    if group_by:
        blank = sum(1 for im in images.values() if not im.meta.get(group_by))
        if blank:
            warnings.append(f"{blank} images have no {group_by!r} value; each is placed on its own.")
    return {rel: find(own(rel)) for rel in images}, sorted(duplicates)


def name_key(value: str) -> str:
    """The words of a name, case-folded and sorted: 'GOGH, Vincent van' and 'Vincent van Gogh' give one key."""
    return " ".join(sorted(re.findall(r"\w+", value.casefold())))


def _spellings(images: dict[str, _Image], group_by: str, assignment: dict[str, str], warnings: list[str]):
    """Group values that may be one name written differently (same words in another order or case). They stay
    different groups (nothing is normalised); the report names them and whether they ended on different sides."""
    values: dict[str, set[str]] = defaultdict(set)
    sides: dict[str, set[str]] = defaultdict(set)
    for rel, im in images.items():
        value = im.meta.get(group_by, "")
        if value:
            values[name_key(value)].add(value)
            sides[name_key(value)].add(assignment[rel])
    found = sorted(sorted(v) for v in values.values() if len(v) > 1)
    split_apart = [sorted(values[name_key(v[0])]) for v in found if len(sides[name_key(v[0])]) > 1]
    if found:
        example = " / ".join(found[0])
        warnings.append(f"{len(found)} sets of {group_by!r} values may be one name spelled differently (e.g. "
                        f"{example}); they are grouped as written, {len(split_apart)} of them across sides. Write "
                        f"one spelling in the CSV where they are the same (listed in {SETTINGS}).")
    return found


def _file_name(im: _Image, by_folder: bool, taken: set[str]) -> str:
    """The file name inside the class folder: the path below the class folder (or in FOLDER) with '/' → '__'."""
    rel = im.rel.partition("/")[2] if by_folder else im.rel
    name = rel.replace("/", "__")
    if name in taken:
        stem, dot, ext = name.rpartition(".")
        name = f"{stem}~{hashlib.sha256(im.rel.encode()).hexdigest()[:8]}{dot}{ext}"
    taken.add(name)
    return name


def _write(folder: Path, out: Path, images: dict[str, _Image], assignment: dict[str, str], columns: list[str],
           settings: dict, report: SplitReport, opts: SplitOptions) -> None:
    ours = ["path", "split", "class", "original_path", "sha256"]
    meta_names = {c: (c if c not in ours else f"{c}_metadata") for c in columns}
    out_abs = Path(os.path.abspath(out))
    out_abs.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_abs.with_name(f".{out_abs.name}.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    order = LINK_ORDERS[opts.link]
    records = []
    try:
        taken: dict[tuple[str, str], set[str]] = defaultdict(set)
        for rel in sorted(images, key=lambda r: (SPLITS.index(assignment[r]), images[r].label, r)):
            im, side = images[rel], assignment[rel]
            name = _file_name(im, not opts.label_column, taken[(side, im.label)])
            (tmp / side / im.label).mkdir(parents=True, exist_ok=True)
            report.links[link_file(folder / rel, tmp / side / im.label / name, order)] += 1
            records.append({"path": f"{side}/{im.label}/{name}", "split": side, "class": im.label,
                            "original_path": str((folder / rel).resolve()), "sha256": im.sha256,
                            **{meta_names[c]: im.meta.get(c, "") for c in columns}})
        for side in report.splits:  # every class folder on every side, so train/ and val/ list the same classes
            for cls in report.counts:
                (tmp / side / cls).mkdir(parents=True, exist_ok=True)
        with open(tmp / LIST, "w", newline="", encoding="utf-8") as f:
            writer = dict_writer(f, [*ours, *meta_names.values()])
            writer.writeheader()
            writer.writerows(records)
        settings = {**settings, "links": dict(report.links), "counts": {c: dict(n) for c, n in report.counts.items()},
                    "unreadable": [{"path": p, "reason": r} for p, r in report.unreadable],
                    "unlabelled": report.unlabelled, "duplicates": report.duplicates,
                    "spellings": report.spellings, "warnings": report.warnings}
        (tmp / SETTINGS).write_text(json.dumps(settings, indent=1, ensure_ascii=False), encoding="utf-8")
        caption = meta_names.get(settings["group_by"]) if settings["group_by"] else None
        _write_page(tmp / PAGE, out_abs.name, records, report, caption)
        old = out_abs.with_name(f".{out_abs.name}.old-{os.getpid()}")
        if out_abs.exists():
            out_abs.rename(old)  # a previous split (checked: only its own files) or an empty folder
        tmp.rename(out_abs)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_page(path: Path, name: str, records: list[dict], report: SplitReport, caption: str | None) -> None:
    from imagemachines.report import write_html

    strips = []
    for cls in report.counts:
        for side in report.splits:
            these = [r for r in records if r["class"] == cls and r["split"] == side]
            sample = these[::max(1, -(-len(these) // STRIP[side]))]  # evenly spaced over the sorted list
            strips.append((cls, side, report.counts[cls].get(side, 0),
                           [(r["path"], r.get(caption, "") if caption else "", Path(r["original_path"]).name)
                            for r in sample]))
    write_html(path, "data_split.html", title=f"{name}: split", name=name, splits=report.splits,
               rows=report.rows(), links=dict(report.links), warnings=report.warnings, strips=strips)
