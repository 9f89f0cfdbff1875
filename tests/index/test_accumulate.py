"""The index's arithmetic piece by piece: streaming top/bottom-k with key tie-breaks, running statistics, merging
partitions, the per-unit histogram and its quantiles, image rows, and the per-layer summary of a forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagemachines.index.accumulate import UnitAccumulator
from imagemachines.index.merge import _rows, histogram, quantiles_from_histogram
from imagemachines.index.passes import summarise
from imagemachines.index.store import chunk_file, save_tensors


def collection(n=23, channels=3, seed=0):
    """Spatial maxima [n, C] with ties (values on a coarse grid), their cells and unique, shuffled image keys."""
    g = torch.Generator().manual_seed(seed)
    maxima = torch.randint(-4, 5, (n, channels), generator=g).float() / 2
    cells = torch.randint(0, 50, (n, channels), generator=g)
    keys = torch.randperm(1000, generator=g)[:n] + 100
    return maxima, cells, keys


def expected_best(maxima, cells, keys, k, largest):
    """Per channel: the k best (value, key, cell) by value, ties by the smaller key."""
    out = []
    for c in range(maxima.shape[1]):
        rows = sorted(zip(maxima[:, c].tolist(), keys.tolist(), cells[:, c].tolist(), strict=True),
                      key=lambda r: (-r[0] if largest else r[0], r[1]))
        out.append(rows[:k])
    return out


def as_rows(values, keys, cells):
    return [list(zip(v.tolist(), kk.tolist(), c.tolist(), strict=True)) for v, kk, c in zip(values, keys, cells,
                                                                                            strict=True)]


def on_border(cells):
    """A stand-in border flag per (image, unit): odd cells."""
    return cells % 2 == 1


def found(maxima, cells):
    """Stand-in peaks: a border peak is 1 above the ranked value; the others far higher (only border peaks may count
    for the highest border peak)."""
    from imagemachines.index.peaks import Peaks

    edge = on_border(cells)
    return Peaks(maxima, cells, edge, torch.where(edge, maxima + 1, maxima + 10), maxima)


def fed(maxima, cells, keys, k, batch):
    acc = UnitAccumulator.empty(maxima.shape[1], k)
    for s in range(0, len(keys), batch):
        part = slice(s, s + batch)
        acc.update(maxima[part], cells[part], keys[part], found(maxima[part], cells[part]))
    return acc


def test_empty_accumulator():
    acc = UnitAccumulator.empty(3, 4)
    assert acc.channels == 3 and acc.k == 4 and acc.top_v.shape == (3, 0) and acc.bot_key.dtype == torch.int64
    assert acc.count.tolist() == [0] and acc.total.dtype == torch.float64
    assert acc.low.tolist() == [float("inf")] * 3 and acc.high.tolist() == [float("-inf")] * 3
    mean, std = acc.mean_std()
    assert mean.tolist() == [0.0] * 3 and std.tolist() == [0.0] * 3
    assert_dtypes(acc)


def assert_dtypes(acc):
    """Values float32, keys and cells and the count int64, statistics float64."""
    dtypes = {name: getattr(acc, name).dtype for name in UnitAccumulator.FIELDS}
    assert dtypes == {"top_v": torch.float32, "top_key": torch.int64, "top_cell": torch.int64,
                      "bot_v": torch.float32, "bot_key": torch.int64, "bot_cell": torch.int64, "count": torch.int64,
                      "total": torch.float64, "total_sq": torch.float64, "low": torch.float64, "high": torch.float64,
                      "border": torch.int64, "edge_high": torch.float64, "inner_high": torch.float64}


@pytest.mark.parametrize("batch", [1, 5, 23])
def test_top_and_bottom_k_are_the_best_values_with_ties_broken_by_the_smaller_key(batch):
    maxima, cells, keys = collection()
    acc = fed(maxima, cells, keys, 4, batch)
    assert as_rows(acc.top_v, acc.top_key, acc.top_cell) == expected_best(maxima, cells, keys, 4, True)
    assert as_rows(acc.bot_v, acc.bot_key, acc.bot_cell) == expected_best(maxima, cells, keys, 4, False)
    assert_dtypes(acc)


def test_running_statistics_are_float64_sums_of_the_maxima():
    maxima, cells, keys = collection()
    maxima = maxima + torch.rand(maxima.shape, generator=torch.Generator().manual_seed(1))
    acc = fed(maxima, cells, keys, 2, 6)
    d = maxima.double().numpy()
    assert acc.count.tolist() == [23]
    np.testing.assert_allclose(acc.total.numpy(), d.sum(0), rtol=1e-12)
    np.testing.assert_allclose(acc.total_sq.numpy(), (d * d).sum(0), rtol=1e-12)
    assert acc.low.tolist() == d.min(0).tolist() and acc.high.tolist() == d.max(0).tolist()
    assert acc.border.tolist() == on_border(cells).sum(0).tolist() and 0 < acc.border.sum() < cells.numel()
    edge = on_border(cells).numpy()
    assert acc.edge_high.tolist() == pytest.approx([float((d[:, c] + 1)[edge[:, c]].max()) for c in range(3)],
                                                   rel=1e-6)  # the highest border peak (float32 sums)
    assert acc.inner_high.tolist() == d.max(0).tolist()
    without = UnitAccumulator.empty(3, 2)
    without.update(maxima, cells, keys)  # no border flags given: none counted
    assert without.border.tolist() == [0, 0, 0]
    mean, std = acc.mean_std()
    np.testing.assert_allclose(mean.numpy(), d.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std.numpy(), d.std(0), rtol=1e-9)
    one = fed(maxima[:1], cells[:1], keys[:1], 2, 1)
    mean, std = one.mean_std()
    assert mean.tolist() == d[0].tolist() and std.tolist() == [0.0] * 3


def test_merging_any_partition_equals_one_pass():
    maxima, cells, keys = collection()
    whole = fed(maxima, cells, keys, 5, 23)
    parts = [(0, 7), (7, 8), (8, 23)]
    for order in ([0, 1, 2], [2, 0, 1]):
        merged = UnitAccumulator.empty(3, 5)
        for i in order:
            a, b = parts[i]
            merged.merge(fed(maxima[a:b], cells[a:b], keys[a:b], 5, 3))
        for name in UnitAccumulator.FIELDS:
            assert torch.equal(getattr(merged, name), getattr(whole, name)), name
    with pytest.raises(ValueError, match="^cannot merge accumulators of layers with different channel counts$"):
        whole.merge(UnitAccumulator.empty(2, 5))


def test_state_survives_a_round_trip_through_named_tensors():
    maxima, cells, keys = collection()
    acc = fed(maxima, cells, keys, 3, 4)
    tensors = acc.tensors("layer/")
    assert sorted(tensors) == sorted(f"layer/{n}" for n in UnitAccumulator.FIELDS)
    back = UnitAccumulator.from_tensors(tensors, "layer/", 3)
    assert back.k == 3 and all(torch.equal(getattr(back, n), getattr(acc, n)) for n in UnitAccumulator.FIELDS)


def test_histogram_counts_every_chunks_maxima_between_each_units_low_and_high(tmp_path):
    g = torch.Generator().manual_seed(2)
    values = [torch.rand(n, 2, generator=g) * torch.tensor([4.0, 1.0]) - 1 for n in (5, 0, 9)]
    for cid, v in enumerate(values):
        save_tensors(chunk_file(tmp_path, cid), {"layer/maxima": v.half()})
    stored = torch.cat(values).half().double()
    low, high = stored.min(0).values, stored.max(0).values
    hist = histogram([0, 1, 2], tmp_path, "layer", low, high, bins=8)
    assert hist.shape == (2, 8) and hist.dtype == torch.int32
    for c in range(2):
        expected, _ = np.histogram(stored[:, c].numpy(), bins=8, range=(float(low[c]), float(high[c])))
        assert hist[c].tolist() == expected.tolist()
    # a one-unit layer whose chunk holds a single image counts that image too
    save_tensors(chunk_file(tmp_path, 7), {"one/maxima": torch.tensor([[0.5]]).half()})
    save_tensors(chunk_file(tmp_path, 8), {"one/maxima": torch.tensor([[0.0], [1.0]]).half()})
    assert histogram([7, 8], tmp_path, "one", torch.zeros(1), torch.ones(1), bins=4).tolist() == [[1, 0, 1, 1]]
    # a unit that never saw an image (low = inf) puts its zeros in the first bin instead of failing
    dead = histogram([0], tmp_path, "layer", torch.tensor([float("inf"), -1.0]), torch.tensor([0.0, 3.0]), bins=4)
    assert dead[0].tolist() == [0, 0, 0, 5]


def test_quantiles_are_linear_inside_the_histogram_bins():
    hist = torch.tensor([[1] * 100, [0] * 50 + [10] + [0] * 49])
    low, high = torch.tensor([0.0, -2.0]), torch.tensor([1.0, 2.0])
    q = quantiles_from_histogram(hist, low, high, qs=(0.01, 0.25, 0.5, 0.99))
    assert q.dtype == torch.float32
    torch.testing.assert_close(q[0], torch.tensor([0.01, 0.25, 0.5, 0.99]))  # a uniform spread: q itself
    # all ten images in bin 50 of [-2, 2] (0 … 0.04): spread evenly across it
    torch.testing.assert_close(q[1], torch.tensor([0.0004, 0.01, 0.02, 0.0396]))
    # uneven bins: the quantile lands inside a bin, after earlier ones: [2, 4, 4] images over [0, 3]
    uneven = quantiles_from_histogram(torch.tensor([[2, 4, 4], [0, 1, 0]]), torch.zeros(2), torch.tensor([3.0, 3.0]),
                                      qs=(0.1, 0.5, 0.9))
    torch.testing.assert_close(uneven[0], torch.tensor([0.5, 1.75, 2.75]))
    torch.testing.assert_close(uneven[1], torch.tensor([1.1, 1.5, 1.9]))  # one image: spread across its bin
    # no image at all (merge_layer gives such a unit min = max = 0): zeros, not NaN
    empty = quantiles_from_histogram(torch.zeros(1, 4, dtype=torch.int32), torch.zeros(1), torch.zeros(1), qs=(0.5,))
    assert empty.tolist() == [[0.0]]


def test_image_keys_become_rows_and_unknown_keys_are_refused():
    sorted_keys, rows = np.array([3, 8, 20]), np.array([2, 0, 1])
    assert _rows(torch.tensor([20, 3, 8, 8]), sorted_keys, rows).tolist() == [1, 2, 0, 0]
    assert _rows(torch.zeros(0, dtype=torch.int64), sorted_keys, rows).shape == (0,)
    message = "^index chunks name images the table does not hold; rebuild the index with --rebuild$"
    for unknown in ([4], [21]):
        with pytest.raises(RuntimeError, match=message):
            _rows(torch.tensor(unknown), sorted_keys, rows)
    for table in ([], [5]):  # an empty table, and a key beyond the only one
        with pytest.raises(RuntimeError, match=message):
            _rows(torch.tensor([9]), np.array(table, dtype=np.int64), np.arange(len(table)))


def test_summarise_gives_each_units_spatial_maximum_its_cell_and_mean():
    a = torch.zeros(2, 2, 3, 4, dtype=torch.float16)
    a[0, 0, 1, 2], a[0, 1, 2, 3], a[1, 0, 0, 1], a[1, 1] = 5, 7, 3, -1
    vec = torch.tensor([[1.0, -2.0], [0.5, 4.0]])
    out = summarise({"conv": a, "logits": vec, "other": torch.ones(1)}, ["conv", "logits"])
    assert list(out) == ["conv", "logits"]
    (maxima, cells, border, peak, inner), mean = out["conv"]
    assert maxima.dtype == torch.float32 and maxima.tolist() == [[5, 7], [3, -1]]
    assert cells.tolist()[0] == [1 * 4 + 2, 2 * 4 + 3] and cells[1, 0] == 1
    torch.testing.assert_close(mean, torch.tensor([[5 / 12, 7 / 12], [3 / 12, -1.0]]))
    # a 3×4 map: (1, 2) is inside, (2, 3) and (0, 1) on the border; a constant map peaks in its first inner cell
    assert border.tolist() == [[False, True], [True, False]] and cells[1, 1] == 1 * 4 + 1
    (maxima, cells, border, peak, inner), mean = out["logits"]  # a vector: its own maximum and mean, in cell 0
    assert maxima.tolist() == vec.tolist() and cells.tolist() == [[0, 0], [0, 0]] and mean.tolist() == vec.tolist()
    assert not border.any()


def test_a_layer_without_any_image_merges_to_zeros(tmp_path):
    from imagemachines.index.merge import merge_layer
    from imagemachines.index.store import layer_file, load_tensors

    merge_layer(tmp_path, [], "layer", 3, 4, False, np.array([], dtype=np.int64), np.array([], dtype=np.int64), 0)
    t = load_tensors(layer_file(tmp_path, "layer"))
    assert t["count"].tolist() == [0] and t["top_value"].shape == (3, 0)
    for name in ("min", "max", "mean", "std", "quantiles"):
        assert t[name].abs().max() == 0, name  # not ±inf, not NaN
    assert t["histogram"].sum() == 0


def test_run_chunks_commits_each_chunk_even_an_empty_one_and_reports_every_batch(blobnet, tmp_path):
    from imagemachines.index.passes import run_chunks
    from imagemachines.index.store import connect, load_tensors

    from .conftest import make_collection

    col = make_collection(tmp_path / "images", n_red=3, n_tint=2, n_grey=0)
    for bad in ("blue/a-bad.png", "red/a-bad.png"):
        (col.root / bad).write_bytes(b"not a picture")
    # chunk 1 in path order: blue/a-bad, blue/tint-00 | red/a-bad, red/red-00 (batches of 2: one bad image each)
    chunk_of = {"blue/a-bad.png": 1, "blue/tint-00.png": 1, "red/a-bad.png": 1, "red/red-00.png": 1,
                "blue/tint-01.png": 2, "red/red-01.png": 2, "red/red-02.png": 2}
    (tmp_path / "idx").mkdir()
    conn = connect(tmp_path / "idx")
    conn.executemany("INSERT INTO chunks (id, state) VALUES (?, 'planned')", [(1,), (2,), (3,)])
    conn.executemany("INSERT INTO images (key, path, sha256, bytes, mtime_ns, status, chunk) "
                     "VALUES (?, ?, '', 0, 0, 'pending', ?)",
                     [(100 + i, p, c) for i, (p, c) in enumerate(sorted(chunk_of.items()))])
    conn.commit()
    key = {p: 100 + i for i, p in enumerate(sorted(chunk_of))}
    layers, batches = {"features.2": 2}, []
    assert run_chunks(blobnet, col.root, tmp_path / "idx", conn, [3], layers, 2, pooled=True, batch_size=2,
                      workers=0) == 0  # chunk 3 holds no image
    assert run_chunks(blobnet, col.root, tmp_path / "idx", conn, [2, 1], layers, 2, pooled=True, batch_size=2,
                      workers=0, on_batch=batches.append) == 7
    assert batches == [2, 1, 2, 2]  # bad images count as done; batches never straddle two chunks
    assert conn.execute("SELECT id FROM chunks WHERE state = 'done' ORDER BY id").fetchall() == [(1,), (2,), (3,)]
    status = dict(conn.execute("SELECT path, status FROM images"))
    assert status == {p: "bad" if "bad" in p else "ok" for p in chunk_of}
    empty = load_tensors(chunk_file(tmp_path / "idx", 3))
    assert empty["keys"].shape == (0,) and empty["features.2/pooled"].shape == (0, 2)
    assert empty["features.2/maxima"].shape == (0, 2) and empty["features.2/top_v"].shape == (2, 0)
    assert (empty["keys"].dtype, empty["features.2/maxima"].dtype, empty["features.2/pooled"].dtype) == (
        torch.int64, torch.float16, torch.float16)  # the same kinds as a chunk with images
    first, second = (load_tensors(chunk_file(tmp_path / "idx", c)) for c in (1, 2))
    assert first["keys"].tolist() == [key["blue/tint-00.png"], key["red/red-00.png"]]
    assert second["keys"].tolist() == [key[p] for p in ("blue/tint-01.png", "red/red-01.png", "red/red-02.png")]
    assert second["features.2/top_v"].shape == (2, 2) and second["features.2/pooled"].shape == (3, 2)  # k of 3
    assert second["features.2/maxima"].dtype == second["features.2/pooled"].dtype == torch.float16  # half the disk
    conn.close()
