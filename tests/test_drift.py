"""Drift statistics: unchanged distributions score near zero, shifted ones score high, discrete ones included."""

import numpy as np
import polars as pl
import pytest

from feature_assets.quality.drift import numeric_drift, summarize


def baseline_of(samples) -> list:
    return [summarize(pl.Series(sample)) for sample in samples]


def test_a_constant_feature_matching_its_baseline_has_no_drift():
    psi, ks = numeric_drift(pl.Series([3.0] * 50), baseline_of([[3.0] * 40, [3.0] * 60]))
    assert psi == pytest.approx(0.0, abs=1e-9) and ks == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_unchanged_discrete_counts_have_no_drift(seed):
    rng = np.random.default_rng(seed)
    baseline = baseline_of([rng.poisson(0.7, 500) for _ in range(7)])
    psi, ks = numeric_drift(pl.Series(rng.poisson(0.7, 500)), baseline)
    assert psi < 0.05 and ks < 0.08


@pytest.mark.parametrize("seed", range(5))
def test_unchanged_continuous_values_have_no_drift(seed):
    rng = np.random.default_rng(seed)
    baseline = baseline_of([rng.normal(10, 2, 1_000) for _ in range(7)])
    psi, ks = numeric_drift(pl.Series(rng.normal(10, 2, 1_000)), baseline)
    assert psi < 0.05 and ks < 0.06


@pytest.mark.parametrize("shift", [-1.5, 1.5])
def test_a_shifted_mean_scores_high_in_both_directions(shift):
    rng = np.random.default_rng(9)
    baseline = baseline_of([rng.normal(10, 2, 1_000) for _ in range(7)])
    psi, ks = numeric_drift(pl.Series(rng.normal(10 + shift, 2, 1_000)), baseline)
    assert psi > 0.2 and ks > 0.15


def test_a_shift_in_discrete_counts_scores_high():
    rng = np.random.default_rng(3)
    baseline = baseline_of([rng.poisson(0.7, 500) for _ in range(7)])
    psi, _ = numeric_drift(pl.Series(rng.poisson(2.0, 500)), baseline)
    assert psi > 0.2
