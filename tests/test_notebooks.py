"""The notebooks in notebooks/ run end to end on tiny settings (so they cannot rot), and are committed clean."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def load(name: str):
    import nbformat

    return nbformat.read(NOTEBOOKS / name, as_version=4)


def with_parameters(nb, **values):
    """Papermill's convention: values appended to the cell tagged ``parameters``."""
    [cell] = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    cell.source += "\n# injected by the test\n" + "\n".join(f"{k} = {v!r}" for k, v in values.items())
    return nb


def execute(nb, cwd: Path):
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def outputs(nb) -> str:
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", "") + "".join(str(v) for v in out.get("data", {}).values()))
    return "\n".join(text)


def test_notebooks_are_committed_without_outputs():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["01-train.ipynb", "02-evaluate.ipynb", "03-visualize.ipynb", "04-concepts.ipynb"]
    for name in names:
        nb = load(name)
        assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1, name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


@pytest.mark.slow
def test_the_three_notebooks_run_on_tiny_settings(tmp_path, monkeypatch):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("IMAGEMACHINES_DATA_DIR", str(tmp_path / "no-wga"))  # no WGA subset: the fallbacks run
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    run = tmp_path / "runs" / "nb"
    train = execute(with_parameters(load("01-train.ipynb"), OUT=str(run), ARCH="resnet18", WEIGHTS="none",
                                    IMAGE_SIZE=32, EPOCHS=1, BATCH_SIZE=8, PER_CLASS=8, CLASSES=2, DEVICE="cpu"),
                    tmp_path)
    assert (run / "run.json").is_file() and "training data:" in outputs(train)
    data = tmp_path / "runs" / "notebook-data" / "split"
    assert sorted(p.name for p in (data / "train").iterdir()) == ["landscape", "portrait"]

    evaluate = execute(with_parameters(load("02-evaluate.ipynb"), RUN=str(run), DATA=str(data), K=4,
                                       DEVICE="cpu"), tmp_path)
    text = outputs(evaluate)
    assert "accuracy" in text and "image/png" in str(evaluate.cells) and "data:image/png;base64" in text

    images = tmp_path / "paintings"
    (images / "a").mkdir(parents=True)
    from PIL import Image

    for i in range(6):
        Image.new("RGB", (48, 40), (40 * i, 100, 200 - 30 * i)).save(images / "a" / f"{i}.png")
    vis = execute(with_parameters(load("03-visualize.ipynb"), MODEL=str(run), WEIGHTS="imagenet", LAYER="layer2",
                                  CHANNEL=3, SIZE=32, STEPS=2, GRID=4, IMAGES=str(images), DEVICE="cpu"), tmp_path)
    text = outputs(vis)
    assert text.count("data:image/png;base64") >= 3 + 8 - 2  # three methods, examples (top and bottom)
    assert (tmp_path / "out" / "notebook-layer2-grid.png").is_file()


@pytest.mark.slow
def test_the_concepts_notebook_runs_on_tiny_settings(tmp_path, monkeypatch):
    """04-concepts on a ResNet-18 run trained for one epoch at 64 px on generated class folders."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from tests.train.conftest import make_dataset, train_run

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the activation cache stays in the test
    data = make_dataset(tmp_path / "data", {"train": 4, "val": 2})
    run = train_run(data, tmp_path / "run", epochs=1, image_size=64)
    nb = execute(with_parameters(load("04-concepts.ipynb"), MODEL=str(run), IMAGES=str(data / "train"), CONCEPTS=2,
                                 MAX_IMAGES=4, RENDER_SIZE=32, RENDER_STEPS=2, OUT=str(tmp_path / "out"),
                                 DEVICE="cpu"), tmp_path)
    text = outputs(nb)
    assert text.count("without the top 1 concepts") == 3  # one line per class (3 classes, 2 concepts each)
    assert text.count("data:image/jpeg;base64") >= 4 and "data:image/png;base64" in text  # crops, maps, renders
    assert (tmp_path / "out" / "concepts.html").is_file() and (tmp_path / "out" / "concepts.json").is_file()
