"""A seeded sample that covers the collection (every label in proportion), and an index of only those images."""

from __future__ import annotations

import csv

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imagemachines.errors import UserError
from imagemachines.index import build_index, open_index, sample_images
from imagemachines.index.sampling import allocate, stratified_sample
from tests.conftest import SHARED, examples


@settings(max_examples=examples(200))
@given(st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3), st.integers(1, 60), min_size=1, max_size=8),
       st.integers(0, 300))
def test_allocation_is_proportional_and_covers_every_label(sizes, n):
    take = allocate(sizes, n)
    total = sum(sizes.values())
    assert sum(take.values()) == min(n, total)
    assert all(0 <= take[c] <= sizes[c] for c in sizes)
    if n >= len(sizes):
        assert all(take[c] >= 1 for c in sizes)  # every label is seen
    if n >= total:
        assert take == sizes
        return
    boosted = sum(1 for c in sizes if n * sizes[c] / total < 1)
    for c in sizes:  # within one image of its share, more only for the labels lifted to one image
        assert abs(take[c] - n * sizes[c] / total) < 1 + boosted, (c, take, n)


def test_allocation_examples():
    assert allocate({"a": 1}, 2) == {"a": 1}  # more asked than there are (found by hypothesis)
    assert allocate({"big": 90, "small": 10}, 5) == {"big": 4, "small": 1}  # the small label lifted to one
    assert allocate({"big": 90, "s1": 5, "s2": 5}, 2) == {"big": 2, "s1": 0, "s2": 0}  # fewer than labels


def test_a_sample_draws_from_every_label_not_the_first_files(tmp_path):
    root = tmp_path / "paintings"
    sizes = {"genre": 40, "landscape": 30, "portrait": 6}  # sorted first: 40 genre paintings
    for label, n in sizes.items():
        (root / label).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (i, 3 * i, 100)).save(root / label / f"{i:02d}.png")
    sample = sample_images(root, 20, seed=0)
    counts = {label: sum(p.parent.name == label for p in sample) for label in sizes}
    assert counts == {"genre": 10, "landscape": 8, "portrait": 2}  # shares 10.5, 7.9, 1.6: largest remainders
    assert sample == sorted(sample) and all(p.is_file() and p.is_relative_to(root) for p in sample)
    assert sample_images(root, 20, seed=0) == sample and sample_images(root, 20, seed=1) != sample
    assert len(sample_images(root, 500)) == 76
    # a label column instead of folders: "old" / "new" by the file number
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "period"])
        w.writerows([f"{label}/{i:02d}.png", "old" if i < 3 else "new"] for label, n in sizes.items() for i in range(n))
    by_period = sample_images(root, 9, metadata=labels, label_column="Period")
    assert sum(p.stem in ("00", "01", "02") for p in by_period) == 1  # 9 of 76, the 9 "old" ones get one
    with pytest.raises(UserError, match="no such column"):
        sample_images(root, 9, metadata=labels, label_column="century")


def test_stratified_sample_depends_only_on_its_label():
    a = stratified_sample({**{f"x{i}": "x" for i in range(20)}, **{f"y{i}": "y" for i in range(20)}}, 10, seed=3)
    b = stratified_sample({**{f"z{i}": "z" for i in range(20)}, **{f"y{i}": "y" for i in range(20)},
                           **{f"x{i}": "x" for i in range(20)}}, 15, seed=3)  # another label, another order
    assert [k for k in a if k[0] == "x"] == [k for k in b if k[0] == "x"]


def test_an_index_of_a_sample_holds_only_the_sample_and_follows_a_new_one(blobnet, collection, tmp_path):
    first = sample_images(collection.root, 6, seed=0)
    idx = open_index(build_index(blobnet, collection.root, tmp_path / "idx", k=2, images=first, progress=False))
    assert sorted(i.path for i in idx.images()) == sorted(p.relative_to(collection.root).as_posix() for p in first)
    assert {p.split("/")[0] for p in (i.path for i in idx.images())} == {"red", "blue", "grey"}
    second = sample_images(collection.root, 6, seed=5)
    assert second != first
    idx = open_index(build_index(blobnet, collection.root, tmp_path / "idx", k=2, images=second, progress=False))
    assert sorted(i.path for i in idx.images()) == sorted(p.relative_to(collection.root).as_posix() for p in second)
    with pytest.raises(UserError, match="not in the image folder"):
        build_index(blobnet, collection.root, tmp_path / "idx2", images=[tmp_path / "elsewhere.png"], progress=False)
    with pytest.raises(UserError, match="not images of"):
        build_index(blobnet, collection.root, tmp_path / "idx2", images=[collection.root / "red" / "nope.png"],
                    progress=False)


@pytest.mark.skipif(not (SHARED / "data" / "paintings" / "images").is_dir(), reason="needs ../shared/data/paintings")
def test_eighty_shared_paintings_cover_every_genre():
    """The notebook's old first-80-files sample held only genre paintings; this one holds all seven labels."""
    sample = sample_images(SHARED / "data" / "paintings" / "images", 80, seed=0)
    labels = {p.parent.name for p in sample}
    assert labels == {"genre", "historical", "landscape", "mythological", "portrait", "religious", "still_life"}
