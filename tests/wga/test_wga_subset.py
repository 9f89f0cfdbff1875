"""Subsets: ImageFolder tree, subset.csv, determinism, balance, grouped splits, overlaps, safety."""

from __future__ import annotations

import csv
import os
import shutil

import pytest
import wgafake
from clirun import run_cli
from wgaserver import WgaServer

from imagemachines.csvfiles import restore
from imagemachines.errors import UserError
from imagemachines.wga.download import DownloadOptions, download
from imagemachines.wga.paths import store_dir
from imagemachines.wga.subset import PAPER_CLASSES, SubsetOptions, build_subset, parse_class_specs

PAINTING_TYPES = {"portrait", "landscape", "still-life"}


@pytest.fixture(scope="module")
def root(tmp_path_factory, catalog_template, jpegs, keys):
    """A data dir with the generated catalog and every available image downloaded."""
    root = tmp_path_factory.mktemp("wga-subset")
    shutil.copyfile(catalog_template / "catalog.sqlite", root / "catalog.sqlite")
    with WgaServer(jpegs) as srv:
        download(root, keys, srv.url, DownloadOptions(concurrency=8, rate=0, retries=0), progress=False)
    return root


def _read(path):
    """subset.csv as the project reads it back (cells a spreadsheet would run carry a leading ', see csvfiles)."""
    with open(path / "subset.csv", newline="", encoding="utf-8") as f:
        return [{k: restore(v) for k, v in r.items()} for r in csv.DictReader(f)]


def test_paper_subset_is_an_imagefolder_with_metadata(root, tmp_path, rows, jpegs):
    from torchvision.datasets import ImageFolder

    report = build_subset(root, str(tmp_path / "paper"), SubsetOptions())
    expected = {t: sum(1 for r in rows if r["FORM"] == "painting" and r["TYPE"] == t
                       and wgafake.key_of(r) in jpegs) for t in PAINTING_TYPES}
    assert {c: sum(n.values()) for c, n in report.counts.items()} == expected
    assert sum(report.not_downloaded.values()) == 2  # painter29's last two paintings are not on the server
    records = _read(report.path)
    assert len(records) == sum(expected.values())
    by_id = {wgafake.key_of(r): r for r in rows}
    for rec in records:
        assert rec["split"] in ("train", "val", "test") and rec["path"].startswith(f"{rec['split']}/{rec['class']}/")
        assert {c: rec[c] for c in wgafake.COLUMNS} == by_id[rec["ID"]]  # full metadata, unchanged
        assert rec["TYPE"] == rec["class"]
        src = store_dir(root, "art") / f"{rec['ID']}.jpg"
        assert os.path.samefile(report.path / rec["path"], src)  # a hard link, no copy
    assert report.links == {"hard": len(records)}
    for split in ("train", "val", "test"):
        ds = ImageFolder(str(report.path / split))
        assert ds.classes == sorted(PAINTING_TYPES)
        assert len(ds) == sum(1 for r in records if r["split"] == split)
    html = (report.path / "index.html").read_text()
    assert "still-life" in html and records[0]["path"].split("/")[0] in html and "no\nredistribution" in html


def test_same_seed_same_subset_other_seed_other_split(root, tmp_path):
    a = _read(build_subset(root, str(tmp_path / "a"), SubsetOptions(seed=3)).path)
    b = _read(build_subset(root, str(tmp_path / "b"), SubsetOptions(seed=3)).path)
    c = _read(build_subset(root, str(tmp_path / "c"), SubsetOptions(seed=4)).path)
    assert a == b
    assert {r["ID"]: r["split"] for r in a} != {r["ID"]: r["split"] for r in c}
    n = len(a)
    for split, frac in (("val", 0.1), ("test", 0.1)):
        assert abs(sum(r["split"] == split for r in a) - frac * n) <= 3  # stratified: per class rounding


def test_balance_equalises_classes(root, tmp_path):
    classes = {"portrait": "FORM=painting TYPE=portrait", "sculpture": "FORM=sculpture"}
    plain = build_subset(root, str(tmp_path / "p"), SubsetOptions(classes=classes))
    sizes = {c: sum(n.values()) for c, n in plain.counts.items()}
    assert sizes["sculpture"] < sizes["portrait"]
    balanced = build_subset(root, str(tmp_path / "b"), SubsetOptions(classes=classes, balance=True))
    assert {c: sum(n.values()) for c, n in balanced.counts.items()} == dict.fromkeys(classes, sizes["sculpture"])
    again = build_subset(root, str(tmp_path / "b2"), SubsetOptions(classes=classes, balance=True))
    assert _read(again.path) == _read(balanced.path)


def test_group_by_author_keeps_each_artist_in_one_split(root, tmp_path):
    def splits_per_author(records):
        seen = {}
        for r in records:
            seen.setdefault(r["AUTHOR"], set()).add(r["split"])
        return seen

    leaky = _read(build_subset(root, str(tmp_path / "r"), SubsetOptions(val=0.2, test=0.2)).path)
    assert any(len(s) > 1 for s in splits_per_author(leaky).values())  # random splits leak artists
    for seed in (0, 1, 2):
        report = build_subset(root, str(tmp_path / f"g{seed}"),
                              SubsetOptions(val=0.2, test=0.2, group_by="author", seed=seed))
        records = _read(report.path)
        assert all(len(s) == 1 for s in splits_per_author(records).values())
        sizes = {s: sum(r["split"] == s for r in records) for s in ("train", "val", "test")}
        assert all(abs(sizes[s] - f * len(records)) <= 10 for s, f in (("train", .6), ("val", .2), ("test", .2)))
    again = _read(build_subset(root, str(tmp_path / "g2b"), SubsetOptions(val=0.2, test=0.2, group_by="AUTHOR",
                                                                            seed=2)).path)
    assert again == records


def test_overlapping_classes(root, tmp_path):
    classes = {"a": "FORM=painting TYPE=portrait,landscape", "b": "FORM=painting TYPE=landscape,still-life"}
    with pytest.raises(UserError, match="match more than one class.*--overlap first"):
        build_subset(root, str(tmp_path / "x"), SubsetOptions(classes=classes))
    first = _read(build_subset(root, str(tmp_path / "f"), SubsetOptions(classes=classes, overlap="first")).path)
    assert {r["TYPE"] for r in first if r["class"] == "a"} == {"portrait", "landscape"}
    assert {r["TYPE"] for r in first if r["class"] == "b"} == {"still-life"}
    drop = _read(build_subset(root, str(tmp_path / "d"), SubsetOptions(classes=classes, overlap="drop")).path)
    assert {r["TYPE"] for r in drop} == {"portrait", "still-life"}
    assert not (tmp_path / "x").exists()


def test_small_and_undownloaded_classes_are_reported(capsys, monkeypatch, root, tmp_path, keys):
    code, out, err = run_cli(capsys, monkeypatch, "wga", "subset", str(tmp_path / "s"), "--data-dir", str(root),
                             "--class", 'szonyi=AUTHOR="SZ?NYI, István" FORM=painting',
                             "--class", 'portrait=TYPE=portrait AUTHOR!="SZ?NYI, István"', "--test", "0")
    assert code == 0, err
    assert "class 'szonyi' has only 9 images (fewer than 20)" in err
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["index.html", "subset.csv", "subset.json",
                                                                   "train", "val"]
    code, _, err = run_cli(capsys, monkeypatch, "wga", "subset", str(tmp_path / "t"), "--data-dir", str(root),
                           "--class", f"nothing=ID={keys[-2]}")
    assert code == 2 and "none of its 1 artworks is downloaded" in err and "wga download" in err
    code, _, err = run_cli(capsys, monkeypatch, "wga", "subset", str(tmp_path / "t"), "--data-dir", str(root),
                           "--class", "x=TYPE=portraits")
    assert code == 2 and "matches no artwork" in err and "Did you mean: portrait" in err


def test_existing_subsets_are_only_replaced_on_request(capsys, monkeypatch, root, tmp_path):
    code, out, err = run_cli(capsys, monkeypatch, "wga", "subset", "paper", "--data-dir", str(root))
    assert code == 0, err
    target = root / "subsets" / "paper"
    assert (target / "subset.csv").is_file() and "still-life" in out
    code, _, err = run_cli(capsys, monkeypatch, "wga", "subset", "paper", "--data-dir", str(root))
    assert code == 2 and "--force" in err
    code, _, err = run_cli(capsys, monkeypatch, "wga", "subset", "paper", "--data-dir", str(root), "--force",
                           "--seed", "9")
    assert code == 0, err
    assert json_seed(target) == 9
    assert sorted(p.name for p in (root / "subsets").iterdir()) == ["paper"]  # no half-built or old tree left
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a subset built by imagemachines"):
        build_subset(root, str(other), SubsetOptions(force=True))
    assert (other / "notes.txt").read_text() == "keep me"
    images = sum(1 for _ in store_dir(root, "art").rglob("*.jpg"))
    shutil.rmtree(target)  # removing a subset never touches the downloads
    assert sum(1 for _ in store_dir(root, "art").rglob("*.jpg")) == images


def json_seed(path):
    import json

    return json.loads((path / "subset.json").read_text())["seed"]


@pytest.mark.parametrize(("specs", "message"), [
    (["portrait"], "NAME=QUERY"),
    (["a/b=TYPE=portrait"], "folder name"),
    (["a=TYPE=portrait", "a=TYPE=landscape"], "given twice"),
    (["a=TYPO=portrait"], "unknown column"),
])
def test_bad_class_specs(specs, message):
    with pytest.raises(UserError, match=message):
        parse_class_specs(specs)


def test_bad_fractions_and_rules(root, tmp_path):
    for opts, message in ((SubsetOptions(val=0.5, test=0.5), "val \\+ test < 1"),
                          (SubsetOptions(overlap="merge"), "--overlap"),
                          (SubsetOptions(link="soft"), "--link"),
                          (SubsetOptions(group_by="ARTIST"), "Did you mean")):
        with pytest.raises(UserError, match=message):
            build_subset(root, str(tmp_path / "z"), opts)


def test_paper_classes_default():
    assert parse_class_specs([f"{k}={v}" for k, v in PAPER_CLASSES.items()]) == PAPER_CLASSES
