"""The sign test the timing tests use: it must catch a real difference and pass noise."""

from __future__ import annotations

import random

import pytest
from common.testing import assert_no_timing_difference


def test_noise_of_either_sign_passes() -> None:
    rng = random.Random(20261202)
    # Load spikes far larger than any fixed tolerance, landing on both of a pair.
    pairs = []
    for _ in range(40):
        load = rng.choice([0.005, 0.05, 0.15])
        pairs.append((load + rng.uniform(0, 0.02), load + rng.uniform(0, 0.02)))
    assert_no_timing_difference(pairs)


def test_a_systematic_difference_fails_even_under_noise() -> None:
    rng = random.Random(20261202)
    pairs = []
    for _ in range(40):
        load = rng.choice([0.005, 0.05, 0.15])
        jitter = rng.uniform(0, 0.001)
        pairs.append((load + 0.004 + jitter, load + rng.uniform(0, 0.001)))
    with pytest.raises(AssertionError, match="40 of 40"):
        assert_no_timing_difference(pairs)


def test_a_difference_below_the_floor_is_none() -> None:
    pairs = [(0.0105, 0.0100)] * 30
    assert_no_timing_difference(pairs)


def test_too_few_pairs_tell_nothing() -> None:
    with pytest.raises(ValueError):
        assert_no_timing_difference([(0.01, 0.01)] * 10)
