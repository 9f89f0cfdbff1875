"""evaluate, top and predict: numbers checked by hand, pictures and pages written, errors explained."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from imagemachines.cli import app
from imagemachines.errors import UnitOutOfRange, UserError
from imagemachines.models import load_model
from imagemachines.train.evaluate import evaluate_run
from imagemachines.train.metrics import confusion_matrix, per_class, summary, top_k_accuracy
from imagemachines.train.predict import predict_files
from imagemachines.train.top import top_images

PNG = b"\x89PNG\r\n\x1a\n"


def test_metrics_match_a_hand_computed_example():
    true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    pred = [0, 1, 0, 1, 1, 2, 0, 2, 1]
    m = confusion_matrix(true, pred, 3)
    assert m.tolist() == [[2, 1, 0], [0, 2, 0], [1, 1, 2]]
    rows = {r["class"]: r for r in per_class(m, ["a", "b", "c"])}
    assert rows["a"]["precision"] == pytest.approx(2 / 3) and rows["a"]["recall"] == pytest.approx(2 / 3)
    assert rows["b"]["precision"] == pytest.approx(2 / 4) and rows["b"]["recall"] == 1.0
    assert rows["b"]["f1"] == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert rows["c"]["precision"] == 1.0 and rows["c"]["recall"] == 0.5 and rows["c"]["support"] == 4
    s = summary(m, ["a", "b", "c"])
    assert s["accuracy"] == pytest.approx(6 / 9) and s["images"] == 9
    scores = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.2, 0.3, 0.5]])
    assert top_k_accuracy(scores, torch.tensor([0, 1, 0]), [1, 2]) == {"top1": pytest.approx(1 / 3),
                                                                      "top2": pytest.approx(2 / 3)}


def _hand_confusion(model, folder, classes):
    """Independent of the evaluate code: PIL resize, normalise, forward, argmax, count."""
    m = [[0] * len(classes) for _ in classes]
    for t, c in enumerate(classes):
        for path in sorted((folder / c).glob("*.jpg")):
            img = Image.open(path).convert("RGB").resize((model.input_size,) * 2, Image.BILINEAR)
            x = torch.from_numpy(np.asarray(img).copy()).float().permute(2, 0, 1)[None] / 255
            with torch.no_grad():
                m[t][int(model.module(model.normalize(x)).argmax())] += 1
    return m


@pytest.fixture
def swapped(trained, tmp_path):
    """The test images with portraits and still lifes filed under each other's names, plus WGA metadata."""
    data, _ = trained
    root = tmp_path / "swapped"
    for c, label in (("landscape", "landscape"), ("portrait", "stilllife"), ("stilllife", "portrait")):
        shutil.copytree(data / "test" / c, root / "test" / label)
    with open(root / "subset.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "split", "class", "AUTHOR", "TITLE", "DATE"])
        for p in sorted(root.rglob("*.jpg")):
            w.writerow([p.relative_to(root).as_posix(), "test", p.parent.name, "GIOTTO di Bondone",
                        f"<Madonna & Child> {p.stem}", "c. 1310"])
    return root


def test_evaluate_agrees_with_a_hand_computed_confusion_matrix(trained, swapped, tmp_path):
    _, run = trained
    result = evaluate_run(run, swapped, out=tmp_path / "eval", workers=0)
    classes = result["class_names"]
    expected = _hand_confusion(load_model(str(run)), swapped / "test", classes)
    assert result["confusion"] == expected
    saved = json.loads((tmp_path / "eval" / "confusion.json").read_text())
    assert saved["matrix"] == expected and saved["class_names"] == classes
    n = sum(map(sum, expected))
    assert result["accuracy"] == pytest.approx(sum(expected[i][i] for i in range(3)) / n)
    assert result["accuracy"] < 0.7  # two of three classes are mislabelled on purpose
    for i, row in enumerate(result["per_class"]):
        col = sum(expected[j][i] for j in range(3))
        assert row["recall"] == pytest.approx(expected[i][i] / sum(expected[i]))
        assert row["precision"] == pytest.approx(expected[i][i] / col if col else 0.0)
    assert (tmp_path / "eval" / "confusion.png").read_bytes()[:8] == PNG
    page = (tmp_path / "eval" / "misclassified.html").read_text()
    wrong = n - sum(expected[i][i] for i in range(3))
    assert page.count("<figure>") == wrong == len(list((tmp_path / "eval" / "thumbs").glob("*.jpg")))
    assert "Author: GIOTTO di Bondone" in page and "&lt;Madonna &amp; Child&gt;" in page
    assert "<Madonna" not in page
    rows = list(csv.DictReader((tmp_path / "eval" / "predictions.csv").open()))
    assert len(rows) == n and sum(r["correct"] == "0" for r in rows) == wrong and rows[0]["DATE"] == "c. 1310"


def test_top_ranks_a_folder_by_class_probability(trained, swapped, tmp_path):
    _, run = trained
    rows = top_images(run, swapped, "portrait", k=5, out=tmp_path / "top", workers=0)
    scores = [r["score"] for r in rows]
    assert len(rows) == 5 and scores == sorted(scores, reverse=True)
    # the real portraits (filed under stilllife/ here) score highest for portrait
    assert all("/stilllife/portrait-" in r["path"] for r in rows)
    table = list(csv.DictReader((tmp_path / "top" / "top.csv").open()))
    assert [int(r["rank"]) for r in table] == [1, 2, 3, 4, 5] and table[0]["AUTHOR"] == "GIOTTO di Bondone"
    assert (tmp_path / "top" / "top.html").read_text().count("<figure>") == 5
    by_index = top_images(run, swapped, "1", k=1, out=tmp_path / "top1", workers=0)
    assert by_index[0]["path"] == rows[0]["path"]


def test_a_gallery_rewritten_with_fewer_images_deletes_only_its_own_thumbnails(trained, swapped, tmp_path):
    _, run = trained
    out = tmp_path / "top"
    top_images(run, swapped, "portrait", k=5, out=out, workers=0)
    mine = out / "thumbs" / "my-notes.jpg"  # a user's own picture in the gallery's folder
    mine.write_bytes(b"not ours")
    top_images(run, swapped, "portrait", k=2, out=out, workers=0)
    assert sorted(p.name for p in (out / "thumbs").iterdir()) == [".written.json", "00000.jpg", "00001.jpg",
                                                                   "my-notes.jpg"]
    assert mine.read_bytes() == b"not ours"
    (out / "thumbs" / "00001.jpg").unlink()
    (out / "thumbs" / "00001.jpg").write_bytes(b"a user's file under a gallery name")
    (out / "thumbs" / ".written.json").write_text('["00000.jpg"]')
    with pytest.raises(UserError, match="did not write"):
        top_images(run, swapped, "portrait", k=2, out=out, workers=0)
    assert (out / "thumbs" / "00001.jpg").read_bytes() == b"a user's file under a gallery name"


def test_top_explains_unknown_classes(trained, tmp_path):
    data, run = trained
    with pytest.raises(UserError, match="Did you mean: portrait"):
        top_images(run, data / "test", "portriat", out=tmp_path / "t")
    with pytest.raises(UnitOutOfRange, match="0 to 2"):
        top_images(run, data / "test", "7", out=tmp_path / "t")


def test_predict_scores_files_and_reports_unreadable_ones(trained, tmp_path):
    data, run = trained
    files = sorted((data / "test" / "portrait").glob("*.jpg"))[:2]
    bad = tmp_path / "bad.jpg"
    bad.write_text("no image")
    rows = predict_files(run, [*files, bad], device="cpu")
    assert [r["path"] for r in rows] == [*map(str, files), str(bad)]
    assert all(r["predicted"] == "portrait" and sum(r["scores"].values()) == pytest.approx(1) for r in rows[:2])
    assert rows[2]["scores"] is None and "cannot read it as an image" in rows[2]["error"]
    with pytest.raises(UserError, match="None of the paths"):
        predict_files(run, [tmp_path / "missing.jpg"])


def test_cli_commands(trained, tmp_path):
    data, run = trained
    runner = CliRunner()
    image = sorted((data / "test" / "landscape").glob("*.jpg"))[0]
    result = runner.invoke(app, ["predict", str(run), str(image), "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["predicted"] == "landscape"
    result = runner.invoke(app, ["evaluate", str(run), str(data), "--out", str(tmp_path / "e"), "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["data"].endswith("test")
    result = runner.invoke(app, ["top", str(run), str(data / "test"), "--class", "stilllife", "--k", "3",
                                 "--out", str(tmp_path / "t"), "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader((tmp_path / "t" / "top.csv").open()))) == 3
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nope"), str(data)])
    assert isinstance(result.exception, UserError)
