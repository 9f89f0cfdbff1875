"""The notebooks in notebooks/ run end to end on tiny settings (so they cannot rot), and are committed clean.

Notebook 1 trains a run once (the ``trained`` fixture); every later notebook gets its own test that uses it. A new
notebook: commit it without outputs, add a test that calls ``execute(...)`` on it, and ``check_as_a_user_meets_it``
checks what every notebook must do (widget progress bars, nothing left in the temporary folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
FIRST = ["01-train.ipynb", "02-evaluate.ipynb", "03-visualize.ipynb", "04-concepts.ipynb"]
WIDGET = "application/vnd.jupyter.widget-view+json"


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


def widget_outputs(nb) -> int:
    return sum(WIDGET in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))


def test_notebooks_are_committed_without_outputs():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert set(FIRST) <= set(names)
    for name in names:
        nb = load(name)
        assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1, name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


@dataclass
class Workspace:
    root: Path  # the notebooks' working folder
    tmp: Path  # TMPDIR of every kernel


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """What the kernels see: no WGA data (the fallbacks run), 2 threads, a private, watched temporary folder."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    root = tmp_path_factory.mktemp("notebooks")
    tmp = root / "kernel-tmp"
    tmp.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMAGEMACHINES_DATA_DIR", str(root / "no-wga"))
        mp.setenv("OMP_NUM_THREADS", "2")
        mp.setenv("TMPDIR", str(tmp))
        # torch keeps its compiler cache in $TMPDIR/torchinductor_<user> (one folder, reused, torch's own): outside
        mp.setenv("TORCHINDUCTOR_CACHE_DIR", str(root / "torch-cache"))
        yield Workspace(root, tmp)


def check_as_a_user_meets_it(nb, space: Workspace, bars: bool = True) -> str:
    """Progress bars are widgets (ipywidgets installed, no text fallback) and the temporary folder stays empty."""
    text = outputs(nb)
    assert "IProgress not found" not in text  # tqdm's warning when ipywidgets is missing
    if bars:
        assert widget_outputs(nb) > 0
    left = sorted(p.name for p in space.tmp.iterdir())
    assert left == [], f"left in the temporary folder: {left}"
    return text


@pytest.fixture(scope="module")
def trained(workspace) -> Path:
    """Notebook 1 on tiny settings: its run folder (its split of synthetic pictures is beside it)."""
    run = workspace.root / "runs" / "nb"
    nb = execute(with_parameters(load("01-train.ipynb"), OUT=str(run), ARCH="resnet18", WEIGHTS="none",
                                 IMAGE_SIZE=32, EPOCHS=1, BATCH_SIZE=8, PER_CLASS=8, DEVICE="cpu"), workspace.root)
    text = check_as_a_user_meets_it(nb, workspace)
    assert (run / "run.json").is_file() and "training data:" in text
    assert "<table>" in text and "symbolic 16" in text  # the split's summary, displayed
    return run


@pytest.mark.slow
def test_01_train_splits_with_the_package_and_trains(trained, workspace):
    data = workspace.root / "runs" / "notebook-data" / "split"
    assert sorted(p.name for p in (data / "train").iterdir()) == ["landscape", "portrait"]
    assert (data / "split.csv").is_file() and all(p.is_symlink() for p in (data / "val").rglob("*.png"))
    assert {len(list((data / "val" / c).iterdir())) for c in ("landscape", "portrait")} == {2}  # 8 per class, 1/4


@pytest.mark.slow
def test_02_evaluate(trained, workspace):
    data = workspace.root / "runs" / "notebook-data" / "split"
    nb = execute(with_parameters(load("02-evaluate.ipynb"), RUN=str(trained), DATA=str(data), K=4, DEVICE="cpu"),
                 workspace.root)
    text = check_as_a_user_meets_it(nb, workspace)
    assert "accuracy" in text and "image/png" in str(nb.cells) and "data:image/png;base64" in text


@pytest.mark.slow
def test_03_visualize_samples_across_the_collection(trained, workspace):
    from PIL import Image

    images = workspace.root / "paintings"
    for label in ("a", "b"):  # sorted first: a/, so the first four files would all be a's
        (images / label).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (48, 40), (40 * i, 100 if label == "a" else 30, 200 - 30 * i)).save(
                images / label / f"{i}.png")
    nb = execute(with_parameters(load("03-visualize.ipynb"), MODEL=str(trained), WEIGHTS="imagenet", LAYER="layer2",
                                 CHANNEL=3, SIZE=32, STEPS=2, GRID=4, IMAGES=str(images), MAX_IMAGES=4,
                                 DEVICE="cpu"), workspace.root)
    text = check_as_a_user_meets_it(nb, workspace)
    assert "4 paintings: {'a': 2, 'b': 2}" in text  # a seeded sample of both labels, not the first four files
    for method in ("lucid", "classic", "maco"):  # the row of three renders, captioned with their method
        assert f"layer2:3 · {method} · " in text
    assert text.count("data:image/png;base64") >= 3 + 4 + 4  # three methods, examples (top and bottom)
    assert (workspace.root / "out" / "notebook-layer2-grid.png").is_file()
    from imagemachines.index import open_index

    index = open_index(workspace.root / "out" / "notebook-collection" / "nb-layer2")  # in WORK, in the open
    assert sorted(i.path.split("/")[0] for i in index.images()) == ["a", "a", "b", "b"]  # the paintings in place


@pytest.mark.slow
def test_04_concepts_runs_on_tiny_settings(workspace, monkeypatch):
    """04-concepts on a ResNet-18 run trained for one epoch at 64 px on generated class folders."""
    from tests.train.conftest import make_dataset, train_run

    root = workspace.root / "concepts"
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cache"))  # the activation cache stays in the test
    data = make_dataset(root / "data", {"train": 4, "val": 2})
    run = train_run(data, root / "run", epochs=1, image_size=64)
    nb = execute(with_parameters(load("04-concepts.ipynb"), MODEL=str(run), IMAGES=str(data / "train"), CONCEPTS=2,
                                 MAX_IMAGES=4, RENDER_SIZE=32, RENDER_STEPS=2, OUT=str(root / "out"),
                                 DEVICE="cpu"), root)
    text = check_as_a_user_meets_it(nb, workspace)
    assert text.count("without the top 1 concepts") == 3  # one line per class (3 classes, 2 concepts each)
    assert text.count("data:image/jpeg;base64") >= 4 and "data:image/png;base64" in text  # crops, maps, renders
    assert (root / "out" / "concepts.html").is_file() and (root / "out" / "concepts.json").is_file()
