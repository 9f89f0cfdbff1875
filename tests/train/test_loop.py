"""The training loop itself: sums, skipped batches, auxiliary heads, the confusion matrix; and a run killed in the
middle of an epoch (with a gradient scaler) resumes to the same weights and scaler state as one never stopped."""

from __future__ import annotations

import json
from collections import namedtuple

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from imagemachines.train import loop
from imagemachines.train.data import Batch
from imagemachines.train.distributed import Dist
from imagemachines.train.loop import Amp, split_outputs, train_epoch, validate

from .conftest import make_dataset, train_run

CPU = torch.device("cpu")
Outputs = namedtuple("Outputs", ["logits", "aux_logits2", "aux_logits1"])  # like torchvision's GoogLeNetOutputs


class Loader(list):
    """A list of batches with the two attributes the loop reads for its progress bar."""

    def __init__(self, batches):
        super().__init__(batches)
        self.sampler = self.dataset = range(sum(len(b) + len(b.bad) for b in batches))


def batch(x: torch.Tensor, y: list[int], bad=()) -> Batch:
    return Batch(x, torch.tensor(y, dtype=torch.long), torch.arange(len(y)), list(bad))


def epoch(model, loader, optimizer, loss_fn=None, aux_weight=0.3):
    return train_epoch(model, loader, optimizer, loss_fn or nn.CrossEntropyLoss(), amp=Amp(CPU, True),
                       aux_weight=aux_weight, set_mode=model.train, dist=Dist(), device=CPU, desc="test")


def test_amp_is_off_on_the_cpu():
    amp = Amp(CPU, True)
    assert not amp.enabled and not amp.scaler.is_enabled()
    with amp.autocast():
        assert not torch.is_autocast_enabled()


def test_split_outputs_separates_main_and_auxiliary_logits():
    main, aux1 = torch.ones(2, 3), torch.zeros(2, 3)
    assert split_outputs(main) == (main, [])
    out_main, aux = split_outputs(Outputs(main, None, aux1))
    assert out_main is main and len(aux) == 1 and aux[0] is aux1


def test_epoch_sums_loss_and_accuracy_over_the_images_and_skips_empty_batches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    xs = [torch.randn(4, 3, 2, 2), torch.randn(2, 3, 2, 2)]
    ys = [[0, 1, 2, 0], [2, 2]]
    with torch.no_grad():  # the model does not change (lr 0): the sums are those of the fixed model
        logits = model(torch.cat(xs))
    y = torch.tensor(ys[0] + ys[1])
    empty = Batch(torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long),
                  [(7, "broken.jpg: cannot identify image")])
    loader = Loader([batch(xs[0], ys[0], [(3, "truncated")]), empty, batch(xs[1], ys[1])])
    result = epoch(model, loader, torch.optim.SGD(model.parameters(), lr=0.0))
    assert result.images == 6
    assert result.loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert result.accuracy == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert result.bad == [(3, "truncated"), (7, "broken.jpg: cannot identify image")]
    assert result.seconds > 0 and result.rate == result.images / result.seconds


def test_auxiliary_heads_add_their_weighted_loss():
    class WithAux(nn.Module):
        def __init__(self):
            super().__init__()
            self.main, self.aux = nn.Linear(4, 3), nn.Linear(4, 3)

        def forward(self, x):
            return Outputs(self.main(x), None, self.aux(x)) if self.training else self.main(x)

    torch.manual_seed(0)
    x, y = torch.randn(5, 4), [0, 1, 2, 1, 0]
    for weight in (0.0, 0.5):
        model = WithAux()
        seen = []

        def loss_fn(logits, target, seen=seen):
            seen.append(logits.shape)
            return F.cross_entropy(logits, target)

        epoch(model, Loader([batch(x, y)]), torch.optim.SGD(model.parameters(), lr=0.0), loss_fn, weight)
        assert len(seen) == 2  # main and auxiliary head
        expected = weight * torch.autograd.grad(F.cross_entropy(model.aux(x), torch.tensor(y)), model.aux.bias)[0]
        torch.testing.assert_close(model.aux.bias.grad, expected)


def test_validate_counts_true_classes_in_rows_and_predictions_in_columns():
    class Oracle(nn.Module):
        """Predicts the class written in the first pixel."""

        def forward(self, x):
            return F.one_hot(x[:, 0, 0, 0].long(), 3).float() * 4

    def images(predicted):
        x = torch.zeros(len(predicted), 3, 2, 2)
        x[:, 0, 0, 0] = torch.tensor(predicted, dtype=torch.float32)
        return x

    first, second = ([0, 1, 1, 2], [0, 0, 1, 2]), ([2, 2], [2, 0])  # (true, predicted)
    loader = Loader([batch(images(first[1]), first[0]), batch(images(second[1]), second[0], [(9, "bad")])])
    loss, confusion, bad = validate(Oracle(), loader, 3, amp=Amp(CPU, False), dist=Dist(), device=CPU, desc="v")
    assert confusion.tolist() == [[1, 0, 0], [1, 1, 0], [1, 0, 2]]
    assert confusion.dtype == torch.long and bad == [(9, "bad")]
    logits = Oracle()(images(first[1] + second[1]))
    assert loss == pytest.approx(F.cross_entropy(logits, torch.tensor(first[0] + second[0])).item(), rel=1e-6)


def test_a_crash_mid_epoch_resumes_to_the_same_weights_and_scaler_state(tmp_path, monkeypatch):
    """A gradient scaler that grows every step (on the CPU here; CUDA's float16 AMP in real runs) makes its
    state visible: resuming must restore it, not start from the initial scale."""
    original_post_init = Amp.__post_init__

    def cpu_scaler(self):
        original_post_init(self)
        self.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)

    monkeypatch.setattr(Amp, "__post_init__", cpu_scaler)
    data = make_dataset(tmp_path / "data", {"train": 4, "val": 2}, size=32)
    settings = {"epochs": 2, "batch_size": 4, "augment": "none"}  # 3 steps per epoch
    straight = train_run(data, tmp_path / "straight", **settings)

    calls = []
    real_split = loop.split_outputs

    def crash_in_epoch_2(out):
        calls.append(1)
        if len(calls) == 5:  # the second step of epoch 2
            raise KeyboardInterrupt
        return real_split(out)

    monkeypatch.setattr(loop, "split_outputs", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_run(data, tmp_path / "resumed", **settings)
    run = tmp_path / "resumed"
    meta = json.loads((run / "run.json").read_text())
    assert (meta["status"], meta["last_epoch"], len(meta["epochs"])) == ("running", 1, 1)
    assert not (run / "epochs" / "02").exists() and not list(run.rglob("*.tmp"))
    monkeypatch.setattr(loop, "split_outputs", real_split)
    seen = []
    train_run(data, run, resume=True, on_epoch_end=lambda r: seen.append(r["epoch"]), **settings)
    assert seen == [2]
    a, b = (json.loads((r / "run.json").read_text()) for r in (straight, run))
    assert a["resume"]["scaler"]["scale"] == 2.0**10 * 2**6  # grown once per step: the scaler really ran
    assert b["resume"]["scaler"] == a["resume"]["scaler"]
    wa, wb = (load_file(str(r / m["resume"]["model"]["file"])) for r, m in ((straight, a), (run, b)))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


class Bar:
    """A stand-in for tqdm that keeps what the loop told it."""

    made: list[Bar] = []

    def __init__(self, **kwargs):
        self.kwargs, self.updates, self.postfix, self.closed = kwargs, [], [], False
        Bar.made.append(self)

    def update(self, n):
        self.updates.append(n)

    def set_postfix(self, **kwargs):
        self.postfix.append(kwargs)

    def close(self):
        self.closed = True


def fixed_model_epoch(**kwargs):
    """The epoch of the sums test (two batches, one bad image, one empty batch) on a model that does not change."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    xs, ys = [torch.randn(4, 3, 2, 2), torch.randn(2, 3, 2, 2)], [[0, 1, 2, 0], [2, 2]]
    with torch.no_grad():
        logits = torch.cat([model(x) for x in xs])  # batch by batch, as the loop sees them
    empty = Batch(torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), [(7, "x")])
    loader = Loader([batch(xs[0], ys[0], [(3, "y")]), empty, batch(xs[1], ys[1])])
    opts = {"amp": Amp(CPU, True), "aux_weight": 0.0, "set_mode": model.train, "dist": Dist(), "device": CPU,
            "desc": "epoch 1", **kwargs}
    result = train_epoch(model, loader, torch.optim.SGD(model.parameters(), lr=0.0), nn.CrossEntropyLoss(), **opts)
    return result, logits, torch.tensor(ys[0] + ys[1])


def test_the_progress_bar_counts_every_image_and_shows_running_loss_and_accuracy(monkeypatch):
    monkeypatch.setattr(loop, "tqdm", Bar)
    Bar.made.clear()
    result, logits, y = fixed_model_epoch()
    [bar] = Bar.made
    assert bar.kwargs == {"total": 8, "desc": "epoch 1", "unit": "img", "disable": False, "dynamic_ncols": True}
    assert bar.updates == [5, 1, 2] and bar.closed  # bad images count as done too
    first = F.cross_entropy(logits[:4], y[:4]).item(), (logits[:4].argmax(1) == y[:4]).float().mean().item()
    assert bar.postfix[0] == {"loss": f"{first[0]:.3f}", "acc": f"{first[1]:.3f}", "refresh": False}
    assert bar.postfix[-1] == {"loss": f"{result.loss:.3f}", "acc": f"{result.accuracy:.3f}", "refresh": False}
    assert len(bar.postfix) == 2  # none for the empty batch
    Bar.made.clear()
    fixed_model_epoch(dist=Dist(rank=1, world=1))  # only the main process draws
    assert Bar.made[0].kwargs["disable"] is True


def test_the_sums_are_float64_and_all_reduced_before_averaging(monkeypatch):
    """Two identical processes, faked: every all-reduce doubles its tensor. The averages stay, the image count
    doubles, and the loss keeps float64 precision."""
    reduced, asked = [], []

    def twice(t, dist):
        reduced.append(t.dtype)
        return t.mul_(2)

    def smallest(value, dist, device):
        asked.append(device)
        return value

    monkeypatch.setattr(loop.D, "sum_", twice)
    monkeypatch.setattr(loop.D, "min_", smallest)
    result, logits, y = fixed_model_epoch()
    assert result.images == 12 and reduced == [torch.float64] and asked == [CPU] * 3
    per_batch = [F.cross_entropy(logits[s], y[s], reduction="sum").item() for s in (slice(0, 4), slice(4, 6))]
    expected = (per_batch[0] + per_batch[1]) * 2 / 12  # summed in float64 (float32 would be off by ~1e-7)
    assert result.loss == pytest.approx(expected, rel=1e-12)
    assert result.accuracy == pytest.approx((logits.argmax(1) == y).double().mean().item(), rel=1e-12)


@pytest.mark.parametrize("bf16", [True, False], ids=["bfloat16", "float16"])
def test_amp_on_cuda_takes_bfloat16_where_supported_else_float16_with_a_scaler(monkeypatch, bf16):
    """The choice itself, without a GPU: bfloat16 needs no gradient scaler, float16 does."""
    import warnings

    made = []

    class Scaler:
        def __init__(self, device, enabled):
            made.append((device, enabled))

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    monkeypatch.setattr(torch.amp, "GradScaler", Scaler)
    amp = Amp(torch.device("cuda"), True)
    assert amp.enabled and amp.dtype == (torch.bfloat16 if bf16 else torch.float16)
    assert made == [("cuda", not bf16)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available": the context is made, not entered
        ctx = amp.autocast()
    assert isinstance(ctx, torch.autocast) and (ctx.device, ctx.fast_dtype) == ("cuda", amp.dtype)
    off = Amp(torch.device("cuda"), False)
    assert not off.enabled and made[-1] == ("cuda", False)
    assert not isinstance(off.autocast(), torch.autocast)


def test_a_one_image_epoch_averages_over_that_one_image_and_times_itself():
    import time

    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x = torch.randn(1, 3, 2, 2)
    with torch.no_grad():
        logits = model(x)
    label = int(logits.argmax(1))  # predicted right: accuracy 1
    before = time.perf_counter()
    result = epoch(model, Loader([batch(x, [label])]), torch.optim.SGD(model.parameters(), lr=0.0))
    elapsed = time.perf_counter() - before
    assert (result.images, result.accuracy) == (1, 1.0)
    assert result.loss == pytest.approx(F.cross_entropy(logits, torch.tensor([label])).item(), rel=1e-6)
    assert 0 < result.seconds <= elapsed


def test_to_device_moves_images_and_labels():
    from imagemachines.train.loop import to_device

    meta = torch.device("meta")  # a device without memory: any tensor left on the CPU shows
    x, y = to_device(batch(torch.zeros(2, 3, 4, 4), [1, 0]), meta)
    assert (x.device, y.device, x.shape, y.dtype) == (meta, meta, (2, 3, 4, 4), torch.long)
