"""The Lucent benchmark's own logic: layer names in Lucent's scheme, the shifted-activation guard, the reach."""

from __future__ import annotations

import torch
from benchmarks.bench_vs_lucent import SHIFTS, Scorer, UnitRun, _reach
from benchmarks.lucent_peer import lucent_layer

from tests.conftest import tiny_loaded_model


def test_layer_names_follow_lucents_hook_names():
    assert lucent_layer("features.14") == "features_14"
    assert lucent_layer("Mixed_6c.branch1x1") == "Mixed_6c_branch1x1"
    assert lucent_layer("logits") == "labels"


def test_shifted_score_of_a_uniform_image_equals_its_plain_score():
    model = tiny_loaded_model(input_size=32)
    scorer = Scorer(model, "features.3")
    grey = torch.full((1, 3, 32, 32), 128, dtype=torch.uint8)
    assert len(scorer.shifts) == SHIFTS and any(dx or dy for dx, dy in scorer.shifts)
    # edges are reflected, so shifting a uniform image changes nothing (zero padding would darken the border)
    assert torch.allclose(torch.tensor(scorer.shifted(grey, [0, 1])), torch.tensor(scorer(grey, [0, 1])), atol=1e-5)


def test_shifted_score_sees_a_pattern_move():
    model = tiny_loaded_model(input_size=32)
    scorer = Scorer(model, "features.3")
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (1, 3, 32, 32), generator=g, dtype=torch.uint8)
    plain, shifted = scorer(noise, list(range(24))), scorer.shifted(noise, list(range(24)))
    assert max(abs(a - b) for a, b in zip(plain, shifted, strict=True)) > 1e-3


def _run(scores: list[float]) -> UnitRun:
    run = UnitRun(0, 1.0, 0.0, 0.0, None)
    run.ours_stamps = [(16 * (k + 1), float(k + 1)) for k in range(len(scores))]
    run.ours_scores = scores
    return run


def test_reach_is_the_first_checkpoint_where_the_mean_gets_there():
    runs = [_run([1.0, 2.0, 3.0, 4.0]), _run([0.0, 1.0, 2.5, 1.0])]
    assert _reach(runs, 2.75) == (2, 48)  # means 0.5, 1.5, 2.75, 2.5
    assert _reach(runs, 2.8) is None
