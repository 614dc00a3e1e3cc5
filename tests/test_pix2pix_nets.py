"""pix2pix nets: U-Net shapes, skips and test-time dropout; PatchGAN patch grid and measured receptive field."""
import pytest
import torch

from ganforge.errors import UserError
from ganforge.nets.pix2pix import PatchDiscriminator, UNetGenerator, receptive_field, unet_depth


@pytest.mark.parametrize("side,depth", [(28, 2), (32, 5), (64, 6), (256, 8)])
@pytest.mark.parametrize("cin,cout", [(1, 1), (1, 3), (3, 3)])
def test_unet_shapes_and_gradients(side, depth, cin, cout):
    assert unet_depth(side) == depth
    torch.manual_seed(0)
    G = UNetGenerator(cin, cout, side, width=4, max_width=16, pad=False)
    padded = UNetGenerator(cin, cout, side, width=4, max_width=16)
    assert padded.depth == (depth if side != 28 else 5)                  # 28 px: padded to 32, down to 1x1
    assert padded(torch.randn(2, cin, side, side)).shape == (2, cout, side, side)
    x = torch.randn(2, cin, side, side)
    y = G(x)
    assert y.shape == (2, cout, side, side) and y.abs().max() < 1
    y.square().sum().backward()
    for name, p in G.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_skips_let_the_unet_copy_what_the_bottleneck_cannot_and_dropout_stays_on_at_test():
    torch.manual_seed(0)
    x = torch.rand(8, 1, 32, 32) * 2 - 1                           # noise: no 1x1 bottleneck can carry it
    losses = {}
    for skips in (True, False):
        torch.manual_seed(1)
        G = UNetGenerator(1, 1, 32, width=8, max_width=16, dropout=0.0, skips=skips)
        opt = torch.optim.Adam(G.parameters(), 1e-2)
        for _ in range(150):
            loss = (G(x) - x).square().mean()
            opt.zero_grad(), loss.backward(), opt.step()
        losses[skips] = loss.item()
    assert losses[True] < 0.2 * losses[False], losses               # the paper's U-Net vs encoder-decoder
    noisy = UNetGenerator(1, 1, 32, width=4, max_width=16)
    noisy.eval()
    x = torch.randn(1, 1, 32, 32)
    assert not torch.equal(noisy(x), noisy(x))                     # the paper's noise: dropout at test time
    quiet = UNetGenerator(1, 1, 32, width=4, max_width=16, dropout_at_test=False)
    quiet.eval()
    assert torch.equal(quiet(x), quiet(x))
    assert UNetGenerator(1, 1, 28, width=4, pad=False).dropped == {1}    # 7x7 inner: too shallow, all but the last
    assert UNetGenerator(1, 1, 28, width=4).dropped == {1, 2, 3}         # padded to 32: 5 levels
    assert UNetGenerator(1, 1, 256, width=4).dropped == {4, 5, 6}


@pytest.mark.parametrize("layers,rf", [(1, 16), (2, 34), (3, 70)])
def test_patchgan_receptive_field_is_measured(layers, rf):
    assert receptive_field(layers) == rf
    torch.manual_seed(0)
    D = PatchDiscriminator(2, width=4, layers=layers)
    D.eval()                                                         # batch norm on running statistics
    a = torch.randn(1, 1, 128, 128, requires_grad=True)
    b = torch.randn(1, 1, 128, 128)
    out = D(a, b)
    h, w = out.shape[-2:]
    out[0, 0, h // 2, w // 2].backward()                             # one logit: which input pixels reach it
    rows, cols = a.grad[0, 0].abs().sum(1).nonzero(), a.grad[0, 0].abs().sum(0).nonzero()
    assert int(rows.max() - rows.min()) + 1 == rf and int(cols.max() - cols.min()) + 1 == rf


def test_patchgan_patch_grid_and_mistakes():
    D = PatchDiscriminator(4, width=4, layers=3)
    assert D(torch.randn(2, 1, 256, 256), torch.randn(2, 3, 256, 256)).shape == (2, 1, 30, 30)   # the paper's 30x30
    assert D(torch.randn(2, 1, 64, 64), torch.randn(2, 3, 64, 64)).shape == (2, 1, 6, 6)
    with pytest.raises(UserError, match="divisible by 4"):
        unet_depth(30)
