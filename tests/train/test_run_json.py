"""A crafted or damaged run.json: one clear error naming the field, never a traceback or a silent misreading."""

from __future__ import annotations

import json

import pytest

from imagemachines.errors import BadCheckpoint
from imagemachines.models.checkpoint import MAX_CLASSES, load_run_dir, read_run_json

GOOD = {"format": "imagemachines-run", "arch": "mobilenet_v2", "class_names": ["a", "b"], "head": "linear",
        "input_size": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
        "weights": {"file": "epochs/01/model.safetensors", "sha256": None}, "epoch": 1, "name": "run"}


def write(tmp_path, **changes):
    meta = {**GOOD, **changes}
    (tmp_path / "run.json").write_text(json.dumps(meta))
    return tmp_path


@pytest.mark.parametrize(("change", "field"), [
    ({"weights": "epochs/01/model.safetensors"}, "weights"),
    ({"weights": {"file": 3}}, "weights.file"),
    ({"class_names": 5}, "class_names"),
    ({"class_names": "abc"}, "class_names"),  # once read as three classes a, b, c
    ({"class_names": [1, 2]}, "class_names.0"),
    ({"class_names": []}, "class_names"),
    ({"epoch": "seven"}, "epoch"),
    ({"mean": "0.5"}, "mean"),
    ({"mean": [0.5, 0.5]}, "mean"),
    ({"std": [0.2, 0.0, 0.2]}, "std.1"),
    ({"input_size": "big"}, "input_size"),
    ({"input_size": 10**9}, "input_size"),
    ({"head": ["linear"]}, "head"),
    ({"arch": {"name": "x"}}, "arch"),
    ({"config": ["lr", 0.1]}, "config"),
])
def test_bad_fields_are_one_clear_error_naming_the_field(tmp_path, change, field):
    run = write(tmp_path, **change)
    with pytest.raises(BadCheckpoint) as exc:
        load_run_dir(run)
    assert f"run.json: {field}: " in str(exc.value) and "restore it" in str(exc.value)


def test_the_class_count_is_bounded_before_the_head_is_built(tmp_path, monkeypatch):
    import imagemachines.models.heads as heads

    monkeypatch.setattr(heads, "rebuild_classifier", lambda *a, **k: pytest.fail("head built"))
    run = write(tmp_path, class_names=[str(i) for i in range(MAX_CLASSES + 1)])
    with pytest.raises(BadCheckpoint, match="class_names"):
        load_run_dir(run)


def test_a_good_description_reads_back_with_numbers_as_numbers(tmp_path):
    meta = read_run_json(write(tmp_path, input_size="299", extra_key={"kept": True}))
    assert meta["input_size"] == 299 and meta["extra_key"] == {"kept": True}
    assert meta["weights"] == {"file": "epochs/01/model.safetensors", "sha256": None}
    assert list(meta["class_names"]) == ["a", "b"]
