"""Mode metrics (VEEGAN/PacGAN protocol) on samples with known answers."""
import math

import pytest
import torch

from ganforge.data.toy import grid, ring
from ganforge.metrics.modes import mode_metrics


def test_real_samples_capture_everything():
    g = grid()
    x = g.sample(2500, torch.Generator().manual_seed(0))
    m = mode_metrics(x, g.means, g.std)
    assert m["modes"] == 25 and m["of"] == 25
    # P(||e|| <= 3 sigma) for a 2-D Gaussian is 1 - exp(-9/2) = 98.89%
    assert m["hq"] == pytest.approx(100 * (1 - math.exp(-4.5)), abs=0.6)
    assert m["kl"] < 0.01


def test_one_mode_gives_log_k_and_far_points_are_low_quality():
    r = ring()
    x = r.means[3].repeat(100, 1)
    m = mode_metrics(x, r.means, r.std)
    assert m["modes"] == 1 and m["hq"] == 100.0 and m["kl"] == pytest.approx(math.log(8))
    far = mode_metrics(torch.zeros(50, 2), r.means, r.std)          # the ring's center: 100 std from every mode
    assert far["modes"] == 0 and far["hq"] == 0.0 and far["kl"] == pytest.approx(math.log(8))


def test_half_the_modes_evenly():
    r = ring()
    x = r.means[::2].repeat(25, 1)
    m = mode_metrics(x, r.means, r.std)
    assert m["modes"] == 4 and m["kl"] == pytest.approx(math.log(2))
