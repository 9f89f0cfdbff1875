"""The contrast statistics against planted differences: Cohen's d where it was planted, permutation p-values
that find it and that keep their promise (a random group rarely shows a 'significant' unit anywhere)."""

from __future__ import annotations

import numpy as np
import pytest

from imagemachines.collection_map.contrast import contrast, mask_of, standardize, top_in_group
from imagemachines.errors import UserError


def planted(n=600, units=40, group=60, shift=1.0, seed=0, planted_units=(3, 17)):
    """Gaussian activations (mean 2, sd 0.5 per unit); the first *group* rows get +shift·sd on *planted_units*."""
    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 0.5, (n, units))
    for u in planted_units:
        x[:group, u] += shift * 0.5
    return x.astype(np.float16), np.arange(group)


def test_the_planted_units_come_first_with_their_effect_size_and_a_small_p():
    x, group = planted(shift=1.2)
    result = contrast(standardize(x), group, permutations=200, seed=1)
    assert {u.channel for u in result.units[:2]} == {3, 17}
    for u in result.units[:2]:
        assert u.d == pytest.approx(1.2, abs=0.3)          # planted: +1.2 within-group SDs
        assert u.p == pytest.approx(1 / 201)               # no random group comes near
        assert u.mean_in - u.mean_out == pytest.approx(0.6, abs=0.15)   # in the unit's own scale
    assert all(u.p > 0.05 for u in result.units[2:])       # the unplanted ones are not called different
    assert (result.n_in, result.n_out, result.permutations, result.seed) == (60, 540, 200, 1)


@pytest.mark.parametrize("larger", [False, True])
def test_cohens_d_is_exact_against_a_direct_computation(larger):
    """For a group smaller than the rest and for one larger (whose sums come from the rest's)."""
    x, group = planted()
    x32 = x.astype(np.float64)
    inside = mask_of(group, x.shape[0])
    if larger:
        inside = ~inside
    a, b = x32[inside], x32[~inside]
    pooled = np.sqrt(((len(a) - 1) * a.var(0, ddof=1) + (len(b) - 1) * b.var(0, ddof=1)) / (len(a) + len(b) - 2))
    expected = (a.mean(0) - b.mean(0)) / pooled
    result = contrast(standardize(x), inside, permutations=0)
    got = {u.channel: u.d for u in result.units}
    assert np.allclose([got[c] for c in range(x.shape[1])], expected, atol=1e-4)
    assert result.n_in == len(a)
    means = {u.channel: (u.mean_in, u.mean_out) for u in result.units}
    assert np.allclose([means[c] for c in range(x.shape[1])], np.c_[a.mean(0), b.mean(0)], atol=1e-3)


def test_lower_units_are_found_too_with_negative_d():
    x, group = planted(shift=-1.5, planted_units=(5,))
    result = contrast(standardize(x), group, permutations=100)
    assert result.units[0].channel == 5 and result.units[0].d < -1
    assert [u.channel for u in result.top(1, "lower")] == [5]
    assert all(u.d > 0 for u in result.top(3, "higher"))


def test_without_a_difference_a_significant_unit_is_rare_over_all_units():
    """The max-T correction: over 40 random groups and 64 units, p < 0.05 anywhere at most ~5 % of the time
    (uncorrected per-unit p-values would flag nearly every group)."""
    flagged = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        x = rng.gamma(2.0, 1.0, (300, 64)).astype(np.float32)    # skewed, like ReLU activations
        group = rng.choice(300, 30, replace=False)
        result = contrast(standardize(x), group, permutations=99, seed=seed)
        flagged += min(u.p for u in result.units) < 0.05
    assert flagged <= 5


def test_two_selections_against_each_other_use_only_their_paintings():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (400, 12))
    x[:50, 2] += 2.0          # selection A is high on unit 2
    x[50:100, 2] -= 0.0
    x[100:, 2] += 5.0         # the rest is far higher still: against the rest, A would look *low*
    prepared = standardize(x)
    a, b = np.arange(50), np.arange(50, 100)
    versus = contrast(prepared, a, against=b, permutations=100)
    assert versus.units[0].channel == 2 and versus.units[0].d > 1.5 and versus.units[0].p < 0.05
    assert (versus.n_in, versus.n_out) == (50, 50)
    assert contrast(prepared, a, permutations=0).units[0].d < 0


def test_seeded_and_both_permutation_paths_agree():
    x, group = planted(n=2000, group=40)                    # small groups: the sparse product
    prepared = standardize(x)
    one = contrast(prepared, group, permutations=150, seed=7)
    assert one == contrast(prepared, group, permutations=150, seed=7)
    import imagemachines.collection_map.contrast as module

    saved = module._SPARSE_BELOW
    module._SPARSE_BELOW = 0.0                              # force the dense product for the same draws
    try:
        dense = contrast(prepared, group, permutations=150, seed=7)
    finally:
        module._SPARSE_BELOW = saved
    assert [u.channel for u in dense.units] == [u.channel for u in one.units]
    assert np.allclose([u.p for u in dense.units], [u.p for u in one.units], atol=2 / 151)


def test_constant_units_get_no_effect_and_no_confidence():
    x, group = planted()
    x[:, 7] = 0.0                                           # a dead unit
    result = contrast(standardize(x), group, permutations=50)
    dead = next(u for u in result.units if u.channel == 7)
    assert dead.d == 0.0 and dead.p == 1.0


def test_the_top_paintings_inside_a_group_are_the_groups_highest():
    x = np.zeros((10, 3), np.float16)
    x[:, 1] = np.arange(10)
    assert top_in_group(x, [2, 5, 7, 9], 1, 2) == [(9, 9.0), (7, 7.0)]
    assert top_in_group(x, [], 1, 2) == []


@pytest.mark.parametrize(("group", "against", "message"), [
    ([0], None, "at least 2 paintings on each side"),
    (list(range(599)), None, "at least 2 paintings on each side"),
    ([0, 1, 2], [2, 3, 4], "share 1 paintings"),
    ([0, 700], None, "outside 0…599"),
    ([-1, 2], None, "outside 0…599"),
    (np.ones(5, bool), None, "one entry per painting"),
    (np.array([0.5, 1.5]), None, "whole painting ids"),
])
def test_bad_groups_are_clear_errors(group, against, message):
    x, _ = planted()
    with pytest.raises(UserError, match=message):
        contrast(standardize(x), group, against=against)


def test_bad_permutation_counts_and_arrays_are_clear_errors():
    x, group = planted()
    with pytest.raises(UserError, match="permutations"):
        contrast(standardize(x), group, permutations=-1)
    with pytest.raises(UserError, match="permutations"):
        contrast(standardize(x), group, permutations=10**6)
    with pytest.raises(UserError, match="at least one of each"):
        standardize(np.zeros((0, 4)))
