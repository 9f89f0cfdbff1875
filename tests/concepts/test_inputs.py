"""Which paintings, which layer, which crops: the rules, and a clear error for every bad input."""

from __future__ import annotations

import shutil

import pytest
import torch
import torchvision
from PIL import Image

from imagemachines.concepts import discover
from imagemachines.concepts.crops import CropGrid, crop_tensors, read_rgb
from imagemachines.concepts.layer import NegativeLayer, concept_layer
from imagemachines.concepts.selection import cap, choose_rule, class_members, open_collection
from imagemachines.errors import UnknownLayer, UserError
from imagemachines.models import LoadedModel
from imagemachines.train.augment import eval_transform
from tests.concepts.conftest import colour_model
from tests.conftest import tiny_loaded_model


def test_the_crop_grid_spans_the_painting_edge_to_edge():
    grid = CropGrid(0.3, 0.25)
    assert grid.starts() == pytest.approx([0.0, 0.7 / 3, 1.4 / 3, 0.7])
    boxes = grid.boxes(320, 211)
    assert len(boxes) == grid.per_image == 16
    assert boxes[0] == (0, 0, 96, 63) and boxes[-1] == (224, 148, 320, 211)
    assert boxes[1] == (75, 0, 171, 63) and boxes[4] == (0, 49, 96, 113)  # row by row: right first, then down
    assert CropGrid(1.0, 0.5).boxes(50, 40) == [(0, 0, 50, 40)]
    assert len(CropGrid(0.5, 0.5).boxes(10, 10)) == 4


@pytest.mark.parametrize(("size", "stride"), [(0, 0.2), (1.2, 0.2), (0.3, 0), (float("nan"), 0.2)])
def test_bad_crop_fractions_are_refused(size, stride):
    with pytest.raises(UserError, match="fraction"):
        CropGrid(size, stride)


def test_a_whole_painting_crop_is_what_evaluation_feeds_the_network(painted):
    image = read_rgb(painted.root / painted.of("red")[0])
    model = tiny_loaded_model()
    mine = crop_tensors(image, [(0, 0, image.width, image.height)], 32, model.normalize)[0]
    torch.testing.assert_close(mine, eval_transform(32, model.mean, model.std)(image))


def test_the_rules_in_order(painted, tmp_path):
    names = ["red", "blue"]
    folder = open_collection(painted.root)
    assert choose_rule(folder, names).kind == "folder"
    assert class_members(folder, choose_rule(folder, names), "RED") == painted.of("red")
    csv = tmp_path / "meta.csv"
    rows = ["path,label,kind"] + [f"{p},{'blue' if i == 0 else p.split('/')[0]},x" for i, p in
                                  enumerate(painted.of("red") + painted.of("blue"))]
    csv.write_text("\n".join(rows) + "\n")
    labelled = open_collection(painted.root, metadata=csv)
    rule = choose_rule(labelled, names)
    assert (rule.kind, rule.column) == ("column", "label")
    assert painted.of("red")[0] in class_members(labelled, rule, "blue")  # the label wins over the folder
    assert choose_rule(labelled, names, predicted=True).kind == "top1"
    with pytest.raises(UserError, match="no column 'genre'.*label, kind"):
        choose_rule(labelled, names, label_column="genre")
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in painted.of("red"):
        shutil.copy(painted.root / p, flat / p.split("/")[1])
    assert choose_rule(open_collection(flat), names).kind == "top1"


def test_without_labels_the_model_top1_choices_are_the_class(painted, tmp_path, cache_dir):
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in painted.of("red") + painted.of("blue"):
        shutil.copy(painted.root / p, flat / p.split("/")[1])
    s = discover(colour_model(), flat, "all", concepts=1, cache=cache_dir, render=False, progress=False)
    assert s.settings["rule"].startswith("paintings the model ranks top-1")
    assert s["red"].paths == [p.split("/")[1] for p in painted.of("red")]
    assert s["blue"].paths == [p.split("/")[1] for p in painted.of("blue")]


def test_crops_enlarged_more_than_five_times_are_counted():
    from imagemachines.concepts.discovery import blown_up
    from imagemachines.concepts.result import CropRef

    small = CropRef(0, "a.jpg", (0, 0, 36, 24), 1.0)  # 0.3 of a 120 × 80 thumbnail: 7.6× to reach 224 px
    large = CropRef(1, "b.jpg", (10, 10, 106, 73), 1.0)  # 0.3 of a 320 × 211 painting: 2.9×
    assert blown_up([small, large, large, small], 224) == 0.5
    assert blown_up([large], 224) == 0.0 and blown_up([], 224) == 0.0
    assert blown_up([large], 500) == 1.0
    from imagemachines.concepts.result import Concept

    def concept(share: float, base: float) -> Concept:
        return Concept(0, 0.1, 0.0, 0.1, 0.0, 0.1, blown_up=share, blown_up_base=base)

    assert concept(0.8, 0.5).resolution_warning and concept(0.6, 0.18).resolution_warning
    assert not concept(0.6, 0.5).resolution_warning and not concept(0.4, 0.0).resolution_warning


def test_max_images_is_a_seeded_sample():
    paths = [f"p{i:02d}.jpg" for i in range(30)]
    assert cap(paths, 10, 0) == cap(paths, 10, 0) != cap(paths, 10, 1)
    assert len(cap(paths, 10, 0)) == 10 and cap(paths, 50, 0) == paths
    with pytest.raises(UserError, match="at least 1"):
        cap(paths, 0, 0)


def test_default_layers_are_the_deepest_non_negative_spatial_cut():
    assert concept_layer(tiny_loaded_model()) == "features.3"
    assert concept_layer(colour_model()) == "features.2"
    mnv2 = LoadedModel.wrap("mobilenet_v2", torchvision.models.mobilenet_v2(weights=None), mean=(0, 0, 0),
                            std=(1, 1, 1), input_size=64, weights_id="random")
    assert concept_layer(mnv2) == "features.18"
    with pytest.raises(NegativeLayer, match=r"features.17.*BatchNorm2d.*e\.g\. features\.18"):
        concept_layer(mnv2, "features.17")


def test_a_layer_ending_in_batchnorm_is_refused_even_when_noise_keeps_it_positive():
    from torch import nn

    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.running_mean.fill_(-50.0)  # (x + 50) / 1: positive on any small input, negative on a large one
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Sequential(nn.Conv2d(4, 4, 1), bn)),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    model = LoadedModel.wrap("bn-end", net, mean=(0, 0, 0), std=(1, 1, 1), input_size=16, weights_id="bn")
    with pytest.raises(NegativeLayer, match="ends in BatchNorm2d"):
        concept_layer(model, "0.1")


def test_bad_input_gets_a_clear_error(painted, tmp_path, cache_dir):
    model = colour_model()
    run = {"concepts": 1, "cache": cache_dir, "render": False, "progress": False}
    with pytest.raises(UserError, match="no class 'green'.*Did you mean"):
        discover(model, painted.root, "green", **run)
    with pytest.raises(UnknownLayer, match="'pool' .* has no spatial map"):
        discover(model, painted.root, "red", layer="pool", **run)
    with pytest.raises(NegativeLayer, match="'features.0' ends in Conv2d"):
        discover(model, painted.root, "red", layer="features.0", **run)
    only_blue = tmp_path / "blue-only"
    shutil.copytree(painted.root / "blue", only_blue / "blue")
    with pytest.raises(UserError, match="No painting of .* belongs to class 'red'.*labels found: blue"):
        discover(model, only_blue, "red", **run)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no images"):
        discover(model, tmp_path / "empty", "red", **run)
    with pytest.raises(UserError, match="4 concepts cannot be found in 6 crops of 3 channels; ask for at most 3"):
        discover(model, painted.root, "red", **{**run, "concepts": 4, "crop": 1.0, "stride": 1.0})


def test_a_painting_photographed_twice_counts_once(painted, tmp_path):
    from imagemachines.concepts.selection import distinct_paintings
    from imagemachines.index import build_index, open_index

    first = painted.of("red")[0]
    image = Image.open(painted.root / first)
    image.resize((image.width * 2, image.height * 2)).save(painted.root / "red" / "zz-copy.png")  # larger photo
    # a network with more units than ColourNet's three (whose 4 × 4 arrangements of 3 colours are alike for most
    # of these paintings); even so two of the toy paintings may be arranged alike: only the copy is asserted
    idx = open_index(build_index(tiny_loaded_model(), painted.root, tmp_path / "idx", k=3, progress=False))
    collection = open_collection(index=idx)
    members = class_members(collection, choose_rule(collection, ["red", "blue"]), "red")
    assert first in members and "red/zz-copy.png" in members
    kept, copies = distinct_paintings(collection, members)
    assert copies["red/zz-copy.png"] == [first]  # the larger photograph stays, the other is left out
    assert "red/zz-copy.png" in kept and first not in kept
    assert sorted(kept + [c for cs in copies.values() for c in cs]) == members  # each painting once, none lost
    assert distinct_paintings(collection, painted.of("blue")) == (painted.of("blue"), {})  # nothing to group
    assert distinct_paintings(open_collection(painted.root), members) == (members, {})  # a folder: no grouping
    said: list[str] = []
    study = discover(colour_model(), idx, "red", concepts=1, cache=tmp_path / "cache", render=False, progress=False,
                     log=said.append)
    red = study.classes["red"]
    assert first not in red.paths and "red/zz-copy.png" in red.paths and red.copies == copies
    assert red.candidates == len(kept) and any("of the same paintings left out" in line for line in said)
    assert red.as_dict()["left_out_copies"]["red/zz-copy.png"] == [first]
