"""L1, PSNR and SSIM against ground truth: closed forms and agreement with scikit-image on the same images."""
import math

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ganforge.metrics.pixel import gaussian_window, l1, pixel_scores, psnr, ssim


def _pairs(channels: int, side: int = 48, n: int = 3):
    """Photo crops in [-1, 1] and degraded copies (noise, blur-like averaging, an offset)."""
    photo = data.astronaut() if channels == 3 else data.camera()[..., None]
    rng = np.random.default_rng(channels)
    truth, test = [], []
    for i in range(n):
        y, x = rng.integers(0, 400, 2)
        a = photo[y:y + side, x:x + side].astype(np.float64) / 127.5 - 1
        b = a + rng.normal(0, 0.05 * (i + 1), a.shape)
        b = 0.5 * (b + np.roll(b, 1, axis=0)) - 0.03 * i
        truth.append(a), test.append(np.clip(b, -1, 1))
    to_t = lambda arrs: torch.tensor(np.stack(arrs)).permute(0, 3, 1, 2)  # noqa: E731
    return to_t(truth), to_t(test), truth, test


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_and_psnr_agree_with_scikit_image(channels):
    x, y, xs, ys = _pairs(channels)
    got_ssim, got_psnr = ssim(y, x), psnr(y, x)
    for i in range(len(xs)):
        want = structural_similarity(xs[i], ys[i], data_range=2.0, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, channel_axis=2)
        assert got_ssim[i].item() == pytest.approx(want, abs=1e-9)
        assert got_psnr[i].item() == pytest.approx(peak_signal_noise_ratio(xs[i], ys[i], data_range=2.0), abs=1e-9)
    assert len(set(np.round(got_ssim.numpy(), 6))) == len(xs)          # the three degradations score differently


def test_closed_forms():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))
    assert torch.isinf(psnr(x, x)).all()
    d = 0.1
    torch.testing.assert_close(psnr(x + d, x), torch.full((2,), 10 * math.log10(4 / d ** 2), dtype=torch.float64))
    torch.testing.assert_close(l1(x - d, x), torch.full((2,), d, dtype=torch.float64))
    w = gaussian_window()
    assert w.shape == (11, 11) and w.sum().item() == pytest.approx(1.0) and w[5, 5] == w.max()
    flat = torch.zeros(1, 1, 11, 11)                                     # two constant images: SSIM is the
    c1 = (0.01 * 2) ** 2                                                 # luminance term alone
    assert ssim(flat + 0.5, flat).item() == pytest.approx((2 * 0.5 * 0 + c1) / (0.25 + c1))


def test_scores_and_mistakes():
    x, y, _, _ = _pairs(1)
    s = pixel_scores(y, x)
    assert set(s) == {"l1", "psnr", "ssim"} and 0 < s["ssim"] < 1 and s["psnr"] > 10
    assert "ssim" not in pixel_scores(torch.zeros(2, 1, 7, 7), torch.ones(2, 1, 7, 7))    # 7 px: no SSIM window
    with pytest.raises(ValueError, match="one shape"):
        psnr(x, x[:, :, :20])
    with pytest.raises(ValueError, match="at least 11 px"):
        ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
