"""Image folders, robust loading, augmentation and sampling."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
from PIL import Image

from imagemachines.errors import UserError
from imagemachines.train.augment import KerasAffine, eval_transform, train_transform
from imagemachines.train.data import ImageFiles, collate, fingerprint, scan_split, train_val
from imagemachines.train.sampler import EpochSampler, balanced_weights, class_weights

from .conftest import CLASSES, make_dataset


def test_train_val_reads_classes_and_labels(dataset):
    classes, train, val = train_val(dataset)
    assert classes == list(CLASSES)
    assert len(train) == 48 and len(val) == 24
    assert all(CLASSES[s.label] == s.path.parent.name for s in train + val)


@pytest.mark.parametrize("damage, message", [
    (lambda d: shutil.rmtree(d / "val"), "must hold train/ and val/"),
    (lambda d: [shutil.rmtree(d / s / c) for s in ("train", "val") for c in CLASSES[1:]], "at least two class"),
    (lambda d: (d / "val" / "portrat").mkdir(), "does not know: portrat. Did you mean: portrait"),
    (lambda d: [p.unlink() for p in (d / "train" / "portrait").iterdir()], "without images"),
])
def test_bad_data_folders_are_explained(dataset, damage, message):
    damage(dataset)
    with pytest.raises(UserError, match=message):
        train_val(dataset)


def test_fingerprint_follows_the_data(dataset):
    _, train, val = train_val(dataset)
    first = fingerprint(train + val, dataset)
    assert fingerprint(train + val, dataset) == first
    extra = dataset / "train" / "portrait" / "new.jpg"
    Image.new("RGB", (40, 40), "red").save(extra)
    _, train2, val2 = train_val(dataset)
    assert fingerprint(train2 + val2, dataset) != first


def test_unreadable_images_are_skipped_not_fatal(dataset):
    folder = dataset / "train" / "portrait"
    good = next(folder.iterdir())
    (folder / "truncated.jpg").write_bytes(good.read_bytes()[:300])
    (folder / "notes.jpg").write_text("not an image")
    _, samples = scan_split(dataset / "train")
    picked = [s for s in samples if s.path.name in (good.name, "truncated.jpg", "notes.jpg")]
    ds = ImageFiles(picked, eval_transform(32, (0.5,) * 3, (0.5,) * 3))
    batch = collate([ds[i] for i in range(len(ds))])
    assert len(batch) == 1 and batch.images.shape == (1, 3, 32, 32)
    bad = {picked[i].path.name: why for i, why in batch.bad}
    assert set(bad) == {"truncated.jpg", "notes.jpg"} and all(bad.values())


def test_keras_affine_identity_and_edge_fill():
    x = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(KerasAffine(0, 0, 0, 0, flip=False)(x), x, atol=1e-4)
    flat = torch.full((3, 24, 24), 0.7)
    torch.manual_seed(3)
    # Keras fill_mode='nearest': what comes in from outside repeats the edge, so a flat image stays flat
    assert torch.allclose(KerasAffine()(flat), flat, atol=1e-5)


def test_keras_affine_matrix_orientation(monkeypatch):
    """A +90° Keras rotation turns the image clockwise in array terms (output row r = input column c)."""
    x = torch.arange(3 * 5 * 5, dtype=torch.float32).reshape(3, 5, 5)
    aff = KerasAffine(rotation=90, shift=0, shear=0, zoom=0, flip=False)
    monkeypatch.setattr(KerasAffine, "_u", staticmethod(lambda lo, hi: hi if hi == 90 else (lo + hi) / 2))
    assert torch.allclose(aff(x), torch.rot90(x, -1, dims=(-2, -1)), atol=1e-4)


def test_augmentation_is_seeded_per_image_and_epoch(dataset):
    _, train, _ = train_val(dataset)
    ds = ImageFiles(train[:2], train_transform(32, "seed", (0.5,) * 3, (0.5,) * 3), seed=7)
    a = ds[0][0]
    torch.manual_seed(123)  # the global generator does not matter
    assert torch.equal(ds[0][0], a)
    assert not torch.equal(ds[1][0], a)
    ds.epoch = 1
    assert not torch.equal(ds[0][0], a)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_epoch_sampler_shards_cover_the_epoch(world):
    shards = [list(EpochSampler(10, seed=1, rank=r, world=world)) for r in range(world)]
    assert all(len(s) == math.ceil(10 / world) for s in shards)
    assert set().union(*shards) == set(range(10))
    if world == 1:
        assert sorted(shards[0]) == list(range(10))
    again = EpochSampler(10, seed=1)
    first = list(again)
    again.set_epoch(1)
    assert list(again) != first and sorted(again) == list(range(10))


def test_balancing_for_unequal_classes():
    labels = [0] * 30 + [1] * 10
    w = class_weights([30, 10])
    assert torch.allclose(w, torch.tensor([40 / 60, 40 / 20]))
    assert torch.equal(class_weights([5, 5, 5]), torch.ones(3))
    drawn = list(EpochSampler(40, weights=balanced_weights(labels, 2), seed=0))
    minority = sum(labels[i] == 1 for i in drawn) / len(drawn)
    assert 0.3 < minority < 0.7  # about half, not a quarter


def test_scan_finds_images_in_sub_folders_and_skips_hidden_and_other_files(tmp_path):
    root = make_dataset(tmp_path / "d", {"train": 2}, size=16)
    split = root / "train"
    (split / "portrait" / "more").mkdir()
    Image.new("RGB", (8, 8)).save(split / "portrait" / "more" / "Nested.PNG")
    (split / "portrait" / "notes.txt").write_text("not an image")
    (split / "portrait" / ".hidden.jpg").write_bytes(b"")
    (split / "portrait" / ".thumbs").mkdir()
    Image.new("RGB", (8, 8)).save(split / "portrait" / ".thumbs" / "small.jpg")
    (split / ".cache").mkdir()
    classes, samples = scan_split(split)
    assert classes == list(CLASSES)
    portraits = [s.path.relative_to(split / "portrait").as_posix() for s in samples if s.label == 1]
    assert portraits == ["more/Nested.PNG", "portrait-train-000.jpg", "portrait-train-001.jpg"]
    assert len(samples) == 7
    with pytest.raises(UserError, match="not a folder of class folders"):
        scan_split(root / "val")
