"""`imagemachines split`: a folder of class folders (or a CSV label column) → train/ val/ [test/] that `train` takes.

Links not copies, every class split by the shares, an artist's paintings on one side, identical files together,
unreadable files reported, the user's files never touched.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from imagemachines.errors import UserError
from imagemachines.train.folder_split import SplitOptions, name_key, split_folder
from imagemachines.train.splitting import split_grouped
from tests.conftest import SHARED

from .conftest import draw

PAINTINGS = SHARED / "data" / "paintings"


def make_folder(root: Path, sizes: dict[str, int], seed: int = 0, size: int = 32) -> Path:
    """``root/<class>/<class>-NNN.jpg``: *sizes* images per class, all different."""
    rng = random.Random(seed)
    for cls, n in sizes.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            draw(cls, size, rng).save(root / cls / f"{cls}-{i:03d}.jpg", quality=90)
    return root


def read_list(out: Path) -> list[dict]:
    with open(out / "split.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


SIZES = {"landscape": 30, "portrait": 15, "stilllife": 7}


def test_class_folders_become_a_stratified_split_of_symbolic_links(tmp_path):
    from torchvision.datasets import ImageFolder

    folder = make_folder(tmp_path / "paintings", SIZES)
    before = snapshot(folder)
    report = split_folder(folder, tmp_path / "split", SplitOptions(val=0.2, test=0.2, progress=False))
    out = tmp_path / "split"
    assert report.splits == ["train", "val", "test"] and report.links == {"symbolic": sum(SIZES.values())}
    for cls, n in SIZES.items():  # every class cut by the shares, as nearly as whole images allow
        assert abs(report.counts[cls]["val"] - 0.2 * n) <= 1 and abs(report.counts[cls]["test"] - 0.2 * n) <= 1
        assert sum(report.counts[cls].values()) == n
    records = read_list(out)
    assert len(records) == sum(SIZES.values())
    for rec in records:
        link = out / rec["path"]
        assert rec["path"] == f"{rec['split']}/{rec['class']}/{Path(rec['original_path']).name}"
        assert link.is_symlink() and os.path.samefile(link, rec["original_path"])
        assert Path(rec["original_path"]).parent.name == rec["class"] and len(rec["sha256"]) == 64
    for side in report.splits:
        ds = ImageFolder(str(out / side))
        assert ds.classes == sorted(SIZES) and len(ds) == sum(r["split"] == side for r in records)
    assert snapshot(folder) == before  # nothing of the user's folder changed
    settings = json.loads((out / "split.json").read_text())
    assert settings["made_by"] == "imagemachines split" and settings["counts"]["portrait"] == dict(
        report.counts["portrait"])
    page = (out / "index.html").read_text()
    assert "stilllife" in page and records[0]["path"] in page and "symbolic 52" in page


def test_same_seed_same_split_another_seed_another(tmp_path):
    folder = make_folder(tmp_path / "p", SIZES)
    sides = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        split_folder(folder, tmp_path / name, SplitOptions(seed=seed, progress=False))
        sides.append({r["original_path"]: r["split"] for r in read_list(tmp_path / name)})
    assert sides[0] == sides[1] != sides[2]


def test_grouped_splits_are_stratified_by_class():
    """A small class among a large one: its share of validation follows the fraction whatever the seed."""
    groups, labels = {}, {}
    for i in range(60):  # class "big": 30 artists with two paintings each
        groups[f"b{i}"], labels[f"b{i}"] = f"artist{i // 2}", "big"
    for i in range(10):  # class "small": ten artists with one painting each
        groups[f"s{i}"], labels[f"s{i}"] = f"painter{i}", "small"
    for seed in range(20):
        sides = split_grouped(groups, {"train": 0.8, "val": 0.2, "test": 0.0}, seed, labels)
        small_val = sum(sides[f"s{i}"] == "val" for i in range(10))
        big_val = sum(sides[f"b{i}"] == "val" for i in range(60))
        assert small_val == 2 and abs(big_val - 12) <= 2, (seed, small_val, big_val)
        assert all(sides[f"b{2 * k}"] == sides[f"b{2 * k + 1}"] for k in range(30))


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_group_by_keeps_every_artist_on_one_side(tmp_path):
    folder = make_folder(tmp_path / "p", {"landscape": 24, "portrait": 24})
    rows = []
    for cls in ("landscape", "portrait"):
        for i in range(24):  # twelve artists painting both classes, two to six paintings each
            rows.append([f"{cls}/{cls}-{i:03d}.jpg", f"Painter {i % 12 if i < 18 else i % 3}", f"t{i}"])
    meta = _write_csv(tmp_path / "labels.csv", ["path", "artist", "title"], rows)
    report = split_folder(folder, tmp_path / "s", SplitOptions(val=0.25, metadata=meta, group_by="Artist",
                                                               progress=False))
    records = read_list(tmp_path / "s")
    sides = defaultdict(set)
    for r in records:
        sides[r["artist"]].add(r["split"])
    assert all(len(s) == 1 for s in sides.values()) and len(sides) == 12
    assert {r["title"] for r in records} == {f"t{i}" for i in range(24)}  # metadata travels
    for cls in ("landscape", "portrait"):
        assert 3 <= report.counts[cls]["val"] <= 9
    assert json.loads((tmp_path / "s" / "split.json").read_text())["group_by"] == "artist"  # the CSV's spelling


def test_identical_files_stay_on_one_side_and_are_reported(tmp_path):
    folder = make_folder(tmp_path / "p", {"landscape": 10, "portrait": 10})
    for i in range(1, 6):  # five more copies of one landscape, one of them filed as a portrait by mistake
        target = folder / ("portrait" if i == 5 else "landscape") / f"copy-{i}.jpg"
        shutil.copyfile(folder / "landscape" / "landscape-000.jpg", target)
    for seed in range(4):
        report = split_folder(folder, tmp_path / f"s{seed}", SplitOptions(val=0.5, seed=seed, progress=False))
        records = read_list(tmp_path / f"s{seed}")
        digest = next(r["sha256"] for r in records if r["original_path"].endswith("landscape-000.jpg"))
        sides = {r["split"] for r in records if r["sha256"] == digest}
        assert len(sides) == 1
        assert report.duplicates == [["landscape/copy-1.jpg", "landscape/copy-2.jpg", "landscape/copy-3.jpg",
                                      "landscape/copy-4.jpg", "landscape/landscape-000.jpg", "portrait/copy-5.jpg"]]
        assert any("identical files carry different classes" in w for w in report.warnings)


def test_unreadable_files_are_reported_and_left_out(tmp_path):
    folder = make_folder(tmp_path / "p", {"landscape": 6, "portrait": 6})
    draw("portrait", 160, random.Random(1)).save(tmp_path / "big.jpg", quality=95)
    whole = (tmp_path / "big.jpg").read_bytes()
    (folder / "portrait" / "truncated.jpg").write_bytes(whole[: len(whole) * 2 // 3])  # the header is intact
    (folder / "portrait" / "notes.jpg").write_text("not a picture")
    (folder / "landscape" / "empty.png").write_bytes(b"")
    report = split_folder(folder, tmp_path / "s", SplitOptions(progress=False))
    assert sorted(p for p, _ in report.unreadable) == ["landscape/empty.png", "portrait/notes.jpg",
                                                        "portrait/truncated.jpg"]
    assert all(reason for _, reason in report.unreadable)
    names = {Path(r["original_path"]).name for r in read_list(tmp_path / "s")}
    assert len(names) == 12 and not names & {"truncated.jpg", "notes.jpg", "empty.png"}
    listed = json.loads((tmp_path / "s" / "split.json").read_text())["unreadable"]
    assert {u["path"] for u in listed} == {p for p, _ in report.unreadable}


def test_classes_from_a_csv_column(tmp_path):
    flat = tmp_path / "scans"
    make_folder(flat, {"landscape": 8, "portrait": 8})
    rows = [[f"{c}/{c}-{i:03d}.jpg", "portrait" if c == "landscape" and i < 2 else c] for c in ("landscape",
                                                                                               "portrait")
            for i in range(8)]
    rows[-1][1] = ""  # one image without a label
    meta = _write_csv(tmp_path / "labels.csv", ["path", "genre"], rows)
    report = split_folder(flat, tmp_path / "s", SplitOptions(metadata=meta, label_column="genre", progress=False))
    assert {c: sum(n.values()) for c, n in report.counts.items()} == {"landscape": 6, "portrait": 9}
    assert report.unlabelled == ["portrait/portrait-007.jpg"]
    records = read_list(tmp_path / "s")
    relabelled = [r for r in records if r["original_path"].endswith("landscape-000.jpg")]
    assert relabelled[0]["class"] == "portrait" and relabelled[0]["path"].endswith("/landscape__landscape-000.jpg")
    bad = _write_csv(tmp_path / "bad.csv", ["path", "genre"], [["landscape/landscape-000.jpg", "a/b"]])
    with pytest.raises(UserError, match="cannot be a folder name"):
        split_folder(flat, tmp_path / "t", SplitOptions(metadata=bad, label_column="genre", progress=False))
    with pytest.raises(UserError, match="no such column.*Did you mean: genre"):
        split_folder(flat, tmp_path / "t", SplitOptions(metadata=meta, label_column="genra", progress=False))
    with pytest.raises(UserError, match="--metadata"):
        split_folder(flat, tmp_path / "t", SplitOptions(group_by="artist", progress=False))
    with pytest.raises(UserError, match="no class 'portait'.*Did you mean: portrait"):
        split_folder(flat, tmp_path / "t", SplitOptions(classes=["portait"], progress=False))


def test_classes_and_per_class_narrow_the_set(tmp_path):
    folder = make_folder(tmp_path / "p", SIZES)
    report = split_folder(folder, tmp_path / "s", SplitOptions(classes=["portrait", "stilllife"], per_class=5,
                                                               progress=False))
    assert {c: sum(n.values()) for c, n in report.counts.items()} == {"portrait": 5, "stilllife": 5}
    assert sorted(p.name for p in (tmp_path / "s" / "train").iterdir()) == ["portrait", "stilllife"]


def test_the_users_files_are_never_deleted(tmp_path):
    folder = make_folder(tmp_path / "p", {"landscape": 5, "portrait": 5})
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a split"):
        split_folder(folder, out, SplitOptions(progress=False))
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    first = split_folder(folder, out, SplitOptions(progress=False))
    assert not first.replaced
    again = split_folder(folder, out, SplitOptions(seed=1, progress=False))  # a previous split is replaced
    assert again.replaced and json.loads((out / "split.json").read_text())["seed"] == 1
    (out / "train" / "landscape" / "my-own.jpg").write_bytes(b"x")
    with pytest.raises(UserError, match="my-own.jpg was not made by it"):
        split_folder(folder, out, SplitOptions(progress=False))
    assert (out / "train" / "landscape" / "my-own.jpg").read_bytes() == b"x"
    assert not list(tmp_path.glob(".out.*"))  # no temporary folder left behind
    with pytest.raises(UserError, match="must be outside"):
        split_folder(folder, folder / "split", SplitOptions(progress=False))
    with pytest.raises(UserError, match="split already"):
        split_folder(out, tmp_path / "again", SplitOptions(progress=False))


def test_links_fall_back_to_hard_links_then_copies(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "p", {"landscape": 3, "portrait": 3})

    def refuse(*args, **kwargs):
        raise OSError("not allowed here")

    monkeypatch.setattr(os, "symlink", refuse)
    hard = split_folder(folder, tmp_path / "h", SplitOptions(progress=False))
    assert hard.links == {"hard": 6}
    rec = read_list(tmp_path / "h")[0]
    assert not (tmp_path / "h" / rec["path"]).is_symlink() and os.path.samefile(tmp_path / "h" / rec["path"],
                                                                                  rec["original_path"])
    monkeypatch.setattr(os, "link", refuse)
    copied = split_folder(folder, tmp_path / "c", SplitOptions(progress=False))
    assert copied.links == {"copy": 6}
    assert (tmp_path / "c" / rec["path"]).read_bytes() == Path(rec["original_path"]).read_bytes()
    with pytest.raises(OSError, match="not allowed"):
        split_folder(folder, tmp_path / "x", SplitOptions(link="symbolic", progress=False))


def test_the_cli_prints_the_table_and_train_points_to_it(tmp_path, capsys, monkeypatch):
    from tests.wga.clirun import run_cli

    folder = make_folder(tmp_path / "p", {"landscape": 10, "portrait": 5})
    code, out, err = run_cli(capsys, monkeypatch, "train", str(folder), "--out", str(tmp_path / "run"))
    assert code == 2 and f"imagemachines split {folder}" in err
    code, out, err = run_cli(capsys, monkeypatch, "split", str(folder), "--out", str(tmp_path / "s"), "--val",
                             "0.4", "--test", "0.2")
    assert code == 0, err
    assert "landscape" in out and "symbolic 15" in out and f"imagemachines train {tmp_path / 's'}" in out
    total = next(line for line in out.splitlines() if "total" in line and "│" in line and "class" not in line)
    assert [int(x) for x in total.replace("│", " ").split()[1:]] == [6, 6, 3, 15]
    code, out, err = run_cli(capsys, monkeypatch, "split", str(folder), "--out", str(tmp_path / "t"), "--val",
                             "0.9", "--test", "0.2")
    assert code == 2 and "val + test < 1" in err


def test_a_split_trains_and_its_metadata_reaches_the_evaluation(tmp_path):
    """End to end: split with metadata → `train` accepts it → `evaluate` shows the CSV's columns."""
    from imagemachines.train.evaluate import evaluate_run

    from .conftest import train_run

    folder = make_folder(tmp_path / "p", {"landscape": 12, "portrait": 12}, size=40)
    rows = [[f"{c}/{c}-{i:03d}.jpg", f"Painter {i % 4}"] for c in ("landscape", "portrait") for i in range(12)]
    meta = _write_csv(tmp_path / "labels.csv", ["path", "artist"], rows)
    split_folder(folder, tmp_path / "data", SplitOptions(val=0.25, metadata=meta, group_by="artist",
                                                         progress=False))
    run = train_run(tmp_path / "data", tmp_path / "run", epochs=1)
    info = json.loads((run / "run.json").read_text())
    assert info["class_names"] == ["landscape", "portrait"]
    evaluate_run(run, tmp_path / "data", device="cpu", workers=0)
    with open(next(run.glob("eval-*")) / "predictions.csv", newline="", encoding="utf-8") as f:
        predictions = list(csv.DictReader(f))
    val = [r for r in read_list(tmp_path / "data") if r["split"] == "val"]
    assert len(predictions) == len(val) > 0
    assert {p["artist"] for p in predictions} == {r["artist"] for r in val}


def test_the_index_joins_split_csv_through_the_links(tmp_path):
    """An index of a split finds split.csv above it; images are links and file names repeat across classes."""
    from imagemachines.index import build_index, open_index
    from tests.index.conftest import blob_model

    folder = tmp_path / "p"
    rng = random.Random(0)
    for cls in ("landscape", "portrait"):
        (folder / cls).mkdir(parents=True)
        for i in range(4):
            draw(cls, 32, rng).save(folder / cls / f"{i}.jpg")  # the same names in both classes
    rows = [[f"{c}/{i}.jpg", f"{c} painter {i}"] for c in ("landscape", "portrait") for i in range(4)]
    meta = _write_csv(tmp_path / "labels.csv", ["path", "artist"], rows)
    split_folder(folder, tmp_path / "s", SplitOptions(val=0.5, metadata=meta, progress=False))
    idx = open_index(build_index(blob_model(), tmp_path / "s" / "train", tmp_path / "idx", k=2, progress=False))
    images = idx.images()
    assert len(images) == 4
    for im in images:
        cls, name = im.path.split("/")
        assert im.meta["artist"] == f"{cls} painter {Path(name).stem}" and im.meta["class"] == cls


def test_name_key_matches_reordered_names_only():
    assert name_key("GOGH, Vincent van") == name_key("Vincent van Gogh") == name_key("vincent VAN gogh")
    assert name_key("COROT, Jean-Baptiste Camille") == name_key("Jean Baptiste Camille Corot")
    assert name_key("Vincent van Gogh") != name_key("Винсент Ван Гог") and name_key("Gogh") != name_key("van Gogh")


@pytest.mark.skipif(not (PAINTINGS / "labels.csv").is_file(), reason="needs ../shared/data/paintings")
def test_the_shared_paintings_grouped_by_artist(tmp_path):
    report = split_folder(PAINTINGS / "images", tmp_path / "s", SplitOptions(
        val=0.2, metadata=PAINTINGS / "labels.csv", group_by="artist", progress=False))
    records = read_list(tmp_path / "s")
    assert len(records) == 458 and not report.unreadable and not report.unlabelled
    sides = defaultdict(set)
    for r in records:
        sides[r["artist"]].add(r["split"])
    assert all(len(s) == 1 for s in sides.values())  # no artist, as written, on both sides
    for cls, n in report.counts.items():  # every class, even still_life (9 paintings), on both sides
        assert report.counts[cls]["val"] >= 1 and abs(n["val"] - 0.2 * sum(n.values())) <= max(2, 0.05 * sum(
            n.values())), (cls, dict(n))
    assert ["landscape/A_3_25.jpg", "landscape/A_4_08.jpg"] in report.duplicates  # one Gainsborough, twice
    assert len({r["split"] for r in records if r["original_path"].endswith(("A_3_25.jpg", "A_4_08.jpg"))}) == 1
    assert ["GOGH, Vincent van", "Vincent van Gogh"] in report.spellings  # named, not silently merged:
    side = {r["artist"]: r["split"] for r in records}
    assert any(len({side[v] for v in spellings}) > 1 for spellings in report.spellings)  # grouped as written
    assert Counter(r["artist"] for r in records)["Винсент Ван Гог"] == 6  # a third spelling, another script
