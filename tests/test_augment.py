"""DiffAugment and ADA (ganforge.augment): each transform against its closed form, gradients through every
transform, 2 processes = 1, p = 0 is the identity, ADA's p update on a scripted r_t sequence."""
import math

import pytest
import torch
import torch.nn.functional as F

from ganforge.augment import ADA, DiffAugment, adjust_p, color, diffaug, filters, geometry, make
from ganforge.errors import UserError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def images(n=4, c=3, side=16, seed=0, dtype=torch.float32):
    return torch.rand(n, c, side, side, generator=gen(seed), dtype=dtype) * 2 - 1


def n_(*values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype)


def per_image(x, fn):
    return torch.stack([fn(i, x[i]) for i in range(len(x))])


# ----- registry


@pytest.mark.parametrize("kind, options, message", [
    ("nope", {}, "choose one of diffaug, ada"),
    ("diffaug", {"policy": "color,zoom"}, "color, translation, cutout"),
    ("diffaug", {"cutout": 2}, "fraction of the image side"),
    ("diffaug", {"strength": 1}, "augment=diffaug"),
    ("ada", {"rotation": 1}, "has no option 'rotation'"),
    ("ada", {"pipe": "bgcfn"}, "choose one of blit, geom, color, bg, bgc"),
    ("ada", {"p": -0.1}, "a finite number >= 0"),
])
def test_make_refuses_bad_choices_in_one_line(kind, options, message):
    with pytest.raises(UserError, match=message):
        make(kind, **options)


def test_make_builds_each_kind_and_only_ada_has_p():
    assert isinstance(make("diffaug", policy="translation"), DiffAugment)
    ada = make("ada", p=0.3, pipe="bg", xflip=0)
    assert isinstance(ada, ADA) and ada.p == 0.3 and ada.multipliers["xflip"] == 0
    assert ada.multipliers["scale"] == 1 and ada.multipliers["hue"] == 0
    assert not hasattr(make("diffaug"), "p")            # the loop sets p only where there is one


# ----- DiffAugment


def test_diffaug_colour_closed_forms():
    x = images()
    assert torch.allclose(diffaug.brightness(x, n_(0.5, -0.5, 0, 0.25)), x + n_(0.5, -0.5, 0, 0.25).float()[:, None, None, None])
    grey = diffaug.saturation(x, n_(0, 0, 0, 0))
    assert torch.allclose(grey, x.mean(1, keepdim=True).expand_as(x), atol=1e-6)
    y = diffaug.contrast(x, n_(1.5, 0.5, 1, 0))
    mean = x.mean((1, 2, 3), keepdim=True)
    assert torch.allclose(y, mean + (x - mean) * n_(1.5, 0.5, 1, 0).float()[:, None, None, None], atol=1e-6)
    assert torch.allclose(y.mean((1, 2, 3)), mean.flatten(), atol=1e-6)     # contrast keeps each image's mean
    assert torch.allclose(y[3], mean[3].expand_as(x[3]))


def test_diffaug_translation_of_a_known_image_fills_zeros():
    x = images(n=3, side=8)
    tx, ty = torch.tensor([2, -1, 0]), torch.tensor([0, 3, -2])
    want = torch.zeros_like(x)
    for i in range(3):
        for r in range(8):
            for q in range(8):
                if 0 <= r - ty[i] < 8 and 0 <= q - tx[i] < 8:
                    want[i, :, r, q] = x[i, :, r - ty[i], q - tx[i]]
    assert torch.equal(diffaug.translation(x, tx, ty), want)


def test_diffaug_cutout_zeroes_the_square_clipped_at_the_border():
    x = torch.ones(2, 1, 8, 8)
    y = diffaug.cutout(x, torch.tensor([2, -2]), torch.tensor([1, 6]), (4, 4))
    assert torch.equal(y[0, 0, 2:6, 1:5], torch.zeros(4, 4)) and y[0].sum() == 64 - 16
    assert torch.equal(y[1, 0, :2, 6:], torch.zeros(2, 2)) and y[1].sum() == 64 - 4


def test_diffaug_draws_the_official_ranges():
    n = 2000
    v = torch.full((n, 3, 2, 2), 0.1)           # constant: saturation and contrast leave it, brightness adds b
    b = DiffAugment("color")(v, gen())[:, 0, 0, 0] - 0.1
    assert b.min() >= -0.5 - 1e-6 and b.max() <= 0.5 + 1e-6 and b.min() < -0.45 and b.max() > 0.45
    dot = torch.zeros(n, 1, 16, 16)
    dot[:, :, 8, 8] = 1
    moved = DiffAugment("translation")(dot, gen()).flatten(1).argmax(1)
    assert set((moved // 16 - 8).tolist()) == set(range(-2, 3)) == set((moved % 16 - 8).tolist())   # 16 / 8 = 2
    cut = DiffAugment("cutout")(torch.ones(n, 1, 16, 16), gen())
    zeros = (cut == 0).flatten(1).sum(1)
    # an 8x8 square centred on one of 17 rows (columns): inside the image for 9 of them, at least half inside
    assert zeros.max() == 64 and zeros.min() == 16 and abs((zeros == 64).float().mean() - (9 / 17) ** 2) < 0.04


# ----- ADA: geometry


def test_the_filter_pair_is_biorthogonal_and_symmetric():
    a, s = filters.taps(filters.ANALYSIS), filters.taps(filters.SYNTHESIS)
    assert torch.equal(a, a.flip(0)) and torch.equal(s, s.flip(0))
    assert abs(a.sum() - 1) < 1e-12 and abs(s.sum() - 2) < 1e-12
    padded = F.pad(s, (7, 7))                 # sum_m a[m] s[m + 2n] = delta_n
    for n in range(-3, 4):
        assert abs(float((a * padded[6 + 2 * n:15 + 2 * n]).sum()) - (n == 0)) < 1e-12


def test_resampling_passes_equal_strided_convolutions_and_their_gradients_are_exact():
    x = images(n=2, side=9, dtype=torch.float64)
    a, s = filters.taps(filters.ANALYSIS), filters.taps(filters.SYNTHESIS)
    flat = F.pad(x, (2, 2, 2, 2), mode="reflect").reshape(6, 1, 13, 13)
    up = F.conv_transpose2d(flat, torch.outer(s, s)[None, None], stride=2, padding=7)       # zeros inserted, filtered
    assert torch.allclose(filters.upsample2(x), up.reshape(2, 3, 17, 17), atol=1e-12)
    y = images(n=2, side=25, dtype=torch.float64)                                          # 2 * 9 + 7
    down = F.conv2d(y.reshape(6, 1, 25, 25), torch.outer(a, a)[None, None], stride=2)
    assert torch.allclose(filters.downsample2(y), down.reshape(2, 3, 9, 9), atol=1e-12)
    small = images(n=1, c=1, side=5, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradgradcheck(filters.upsample2, (small,))
    assert torch.autograd.gradgradcheck(filters.downsample2, (images(n=1, c=1, side=17, dtype=torch.float64).requires_grad_(True),))


def test_source_grid_and_both_samplers():
    """The 2x output grid's samples read where the matrix sends them; the gather sampler (used on GPUs, for its
    deterministic gradient) equals grid_sample (used on the CPU), positions far outside included."""
    G = geometry.rotate_matrix(n_(0.4, -1.0)) @ geometry.scale_matrix(n_(2.5, 0.7), n_(1.9, 0.8))
    grid = geometry.source_grid(G, 6, 8, torch.float64)
    qx, qy = -3.5 - 2 + 0.5 * 3, -2.5 - 2 + 0.5 * 5                   # output sample (row 5, column 3), pixels
    assert grid.shape == (2, 19, 23, 2)                                 # reads input pixel (G q) of 8 x 6
    assert torch.allclose(grid[:, 5, 3, 0], (G[:, 0, 0] * qx + G[:, 0, 1] * qy) / 3.5)
    assert torch.allclose(grid[:, 5, 3, 1], (G[:, 1, 0] * qx + G[:, 1, 1] * qy) / 2.5)
    assert torch.allclose(geometry.source_grid(G, 6, 8), grid.float(), atol=1e-6)
    img = images(n=2, side=11, dtype=torch.float64).requires_grad_(True)
    a, b = geometry.sample(img, grid), geometry.sample_gather(img, grid)
    assert grid.abs().max() > 3 and torch.allclose(a, b, atol=1e-12)
    w = torch.rand(a.shape, generator=gen(2), dtype=torch.float64)
    ga, gb = (torch.autograd.grad((v * w).sum(), img)[0] for v in (a, b))
    assert torch.allclose(ga, gb, atol=1e-12)


def test_identity_matrix_returns_the_image():
    x = images()
    assert torch.allclose(geometry.warp(x, torch.eye(3).repeat(4, 1, 1)), x, atol=1e-5)


def test_blitting_transforms_are_exact():
    x = images()
    mask = torch.tensor([1, 0, 1, 0])
    want = torch.where(mask.bool()[:, None, None, None], x.flip(3), x)
    assert torch.allclose(geometry.xflip(x, mask), want, atol=1e-5)
    k = torch.tensor([0, 1, 2, 3])
    want = per_image(x, lambda i, im: torch.rot90(im, int(k[i]), (1, 2)))
    assert torch.allclose(geometry.rotate90(x, k), want, atol=1e-5)
    assert torch.allclose(geometry.rotate(x, k * math.pi / 2), want, atol=1e-5)
    tx, ty = torch.tensor([3, -2, 0, 5]), torch.tensor([1, 4, -3, 0])
    padded = F.pad(x, (8, 8, 8, 8), mode="reflect")        # ADA fills with the mirror image
    want = per_image(x, lambda i, im: padded[i, :, 8 - ty[i]:24 - ty[i], 8 - tx[i]:24 - tx[i]])
    assert torch.allclose(geometry.translate(x, tx, ty), want, atol=1e-5)


def ramp(side=32):
    c = (side - 1) / 2
    yy, xx = torch.meshgrid(torch.arange(side, dtype=torch.float64) - c, torch.arange(side, dtype=torch.float64) - c,
                            indexing="ij")
    f = lambda X, Y: 0.03 * X - 0.02 * Y + 0.1             # noqa: E731
    return f, xx, yy, f(xx, yy).expand(1, 1, side, side)


@pytest.mark.parametrize("name, fn, matrix", [
    ("scale", lambda x: geometry.scale(x, n_(1.3)), geometry.scale_matrix(n_(1 / 1.3), n_(1 / 1.3))),
    ("aniso", lambda x: geometry.aniso(x, n_(1.2)), geometry.scale_matrix(n_(1 / 1.2), n_(1.2))),
    ("rotate", lambda x: geometry.rotate(x, n_(0.3)), geometry.rotate_matrix(n_(0.3))),
    ("xfrac", lambda x: geometry.translate(x, n_(0.37), n_(-1.6)), geometry.translate_matrix(n_(-0.37), n_(1.6))),
])
def test_general_geometric_transforms_move_a_linear_image_exactly(name, fn, matrix):
    """Bilinear sampling and both filters reproduce linear images, so away from the mirrored border the
    result is the image read at the matrix's positions."""
    f, xx, yy, img = ramp()
    m = matrix[0]
    want = f(m[0, 0] * xx + m[0, 1] * yy + m[0, 2], m[1, 0] * xx + m[1, 1] * yy + m[1, 2])
    got = fn(img)[0, 0]
    assert torch.allclose(got[8:-8, 8:-8], want[8:-8, 8:-8], atol=1e-10), name


def test_mirroring_the_2x_image_equals_reflect_padding_by_any_margin():
    """warp mirrors its 2x image about the edge samples; the reference reflect-pads the image first. With a
    symmetric filter these agree: here against explicit padding by 40 pixels on a 48-pixel image."""
    x = images(n=2, side=48, dtype=torch.float64)
    G = geometry.scale_matrix(n_(1.6, 0.9), n_(1.7, 1.1)) @ geometry.rotate_matrix(n_(0.7, -2.0))
    m, side = 40, 48
    fine = filters.upsample2(F.pad(x, (m,) * 4, mode="reflect"))          # pixels -m .. side - 1 + m
    c, n_fine = (side - 1) / 2, 2 * (side + 2 * m) - 1
    to_input = torch.diag(n_(1 / (c + m), 1 / (c + m), 1))                  # padded pixel coordinates -> [-1, 1]
    theta = (to_input @ G @ torch.diag(n_(c + 2, c + 2, 1)))[:, :2]
    grid = F.affine_grid(theta, [2, 3, 2 * side + 7, 2 * side + 7], align_corners=True)
    assert grid.abs().max() < 1 - 4 / n_fine                               # no position reaches the padding's edge
    want = filters.downsample2(F.grid_sample(fine, grid, align_corners=True))
    assert torch.allclose(geometry.warp(x, G), want, atol=1e-10)


# ----- ADA: colour


def test_colour_transforms_on_constant_and_grey_images():
    v = torch.full((3, 3, 4, 4), 0.3)
    assert torch.allclose(color.brightness(v, n_(0.2, -0.5, 0)), v + n_(0.2, -0.5, 0).float()[:, None, None, None])
    assert torch.allclose(color.contrast(v, n_(2, 0.5, 1)), v * n_(2, 0.5, 1).float()[:, None, None, None])
    assert torch.allclose(color.lumaflip(v, n_(1, 0, 1)), v * n_(-1, 1, -1).float()[:, None, None, None])
    assert torch.allclose(color.hue(v, n_(0.5, 2, -3)), v, atol=1e-6)                  # grey has no hue
    assert torch.allclose(color.saturation(v, n_(0, 3, 0.5)), v, atol=1e-6)
    g1 = torch.full((2, 1, 4, 4), -0.4)                                                 # 1 channel: the grey
    assert torch.allclose(color.lumaflip(g1, n_(1, 0)), g1 * n_(-1, 1).float()[:, None, None, None])
    assert torch.allclose(color.brightness(g1, n_(0.1, 0)), g1 + n_(0.1, 0).float()[:, None, None, None])


def test_colour_transforms_on_coloured_images():
    x = images(n=2)
    mean = x.mean(1, keepdim=True)
    assert torch.allclose(color.saturation(x, n_(0, 0)), mean.expand_as(x), atol=1e-6)
    assert torch.allclose(color.saturation(x, n_(2.5, 1)), mean + n_(2.5, 1).float()[:, None, None, None] * (x - mean), atol=1e-5)
    assert torch.allclose(color.lumaflip(x, n_(1, 1)), x - 2 * mean, atol=1e-6)
    assert torch.allclose(color.hue(x, n_(2 * math.pi / 3, -2 * math.pi / 3)),
                          torch.stack([x[0, [2, 0, 1]], x[1, [1, 2, 0]]]), atol=1e-6)            # r -> g -> b
    for identity in (color.brightness(x, n_(0, 0)), color.contrast(x, n_(1, 1)), color.lumaflip(x, n_(0, 0)),
                     color.hue(x, n_(0, 0)), color.saturation(x, n_(1, 1))):
        assert torch.allclose(identity, x, atol=1e-6)


# ----- gradients: every transform alone, then the pipelines


TRANSFORMS = {
    "diffaug.brightness": lambda x: diffaug.brightness(x, n_(0.3)),
    "diffaug.saturation": lambda x: diffaug.saturation(x, n_(1.7)),
    "diffaug.contrast": lambda x: diffaug.contrast(x, n_(0.6)),
    "diffaug.translation": lambda x: diffaug.translation(x, torch.tensor([1]), torch.tensor([-2])),
    "diffaug.cutout": lambda x: diffaug.cutout(x, torch.tensor([1]), torch.tensor([2]), (2, 2)),
    "xflip": lambda x: geometry.xflip(x, torch.tensor([1])),
    "rotate90": lambda x: geometry.rotate90(x, torch.tensor([1])),
    "xint": lambda x: geometry.translate(x, n_(1), n_(-2)),
    "scale": lambda x: geometry.scale(x, n_(0.8)),
    "rotate": lambda x: geometry.rotate(x, n_(0.5)),
    "aniso": lambda x: geometry.aniso(x, n_(1.3)),
    "xfrac": lambda x: geometry.translate(x, n_(0.4), n_(1.3)),
    "brightness": lambda x: color.brightness(x, n_(0.2)),
    "contrast": lambda x: color.contrast(x, n_(1.4)),
    "lumaflip": lambda x: color.lumaflip(x, n_(1)),
    "hue": lambda x: color.hue(x, n_(1.1)),
    "saturation": lambda x: color.saturation(x, n_(0.4)),
    "the ada pipeline": lambda x: ADA(p=1.0)(x, gen(2)),
    "the diffaug pipeline": lambda x: DiffAugment()(x, gen(2)),
}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_each_transform_passes_gradcheck(name):
    """The gradient that reaches x (and so G) through each transform alone, and through each pipeline, is the
    transform's derivative (checked against finite differences in float64)."""
    x = torch.rand(1, 3, 5, 5, dtype=torch.float64, generator=gen(1), requires_grad=True)
    assert torch.autograd.gradcheck(TRANSFORMS[name], (x,), fast_mode=True)


@pytest.mark.parametrize("aug", [DiffAugment(), ADA(p=1.0)], ids=["diffaug", "ada"])
def test_gradients_reach_the_images_and_r1_differentiates_through(aug):
    """D's loss reaches x (and so G); R1 on the augmented reals needs a second derivative through it."""
    x = images(n=4).requires_grad_(True)
    conv = torch.nn.Conv2d(3, 1, 3)
    out = conv(aug(x, gen(3))).mean((1, 2, 3))
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    assert torch.isfinite(g).all() and (g.abs().sum((1, 2, 3)) > 0).all()
    g.square().sum().backward()
    assert torch.isfinite(conv.weight.grad).all() and conv.weight.grad.abs().sum() > 0


# ----- the pipelines


@pytest.mark.parametrize("aug", [DiffAugment(), ADA(p=0.2), ADA(p=1.0), ADA(p=1.0, pipe="bg")],
                         ids=["diffaug", "ada-0.2", "ada-1", "ada-bg-1"])
def test_two_processes_equal_one(aug):
    x = images(n=12)
    whole = aug(x, gen(7))
    halves = torch.cat([aug(x[:6], gen(7), rows=slice(0, 6), n_global=12), aug(x[6:], gen(7), rows=slice(6, 12), n_global=12)])
    thirds = torch.cat([aug(x[i:i + 4], gen(7), rows=slice(i, i + 4), n_global=12) for i in (0, 4, 8)])
    assert torch.equal(whole, halves) and torch.equal(whole, thirds)
    assert not torch.equal(whole, x)
    assert whole.is_contiguous()            # a channels-last result slowed D's convolutions by 5 %
    with pytest.raises(ValueError, match="not the 6 images"):
        aug(x[:6], gen(7), rows=slice(0, 4), n_global=12)


@pytest.mark.parametrize("aug", [DiffAugment(), ADA(p=1.0)], ids=["diffaug", "ada"])
def test_an_autocast_phase_does_not_change_the_augmentation(aug):
    """The G phase runs D under autocast; the augmentation (matrix products included) stays in float32."""
    x = images()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = aug(x, gen(6))
    assert y.dtype == torch.float32 and torch.equal(y, aug(x, gen(6)))


def test_p_zero_returns_the_input_itself():
    x = images()
    assert ADA(p=0.0)(x, gen()) is x


def test_leak_check_p_one_with_only_the_flip():
    """p = 1 with only x-flip: every image is either itself or its mirror image; as in the paper the flip
    itself is drawn (i ~ U{0, 1}), so about half are mirrored (at p = 0.5, a quarter)."""
    x = images(n=400, c=1, side=6)
    for p, share in ((1.0, 0.5), (0.5, 0.25)):
        y = ADA(p=p, pipe="blit", rotate90=0, xint=0)(x, gen(11))
        flipped = (y - x.flip(3)).flatten(1).abs().max(1).values < 1e-5
        same = (y - x).flatten(1).abs().max(1).values < 1e-5
        assert (flipped ^ same).all()
        assert abs(flipped.float().mean() - share) < 0.08
    assert torch.allclose(geometry.xflip(x, torch.ones(400)), x.flip(3), atol=1e-5)     # mask 1: every image


def test_each_transform_happens_with_probability_p():
    n, p = 4000, 0.3
    G, C = ADA(p=p).matrices(gen(5), n, 16, 16, 3)
    moved = (G - torch.eye(3)).flatten(1).abs().amax(1) > 0
    recoloured = (C - torch.eye(4)).flatten(1).abs().amax(1) > 0
    # each transform with probability p (rotation: over its two draws); when chosen, a flip is the identity half
    # the time, a quarter turn a quarter of the time, an integer shift of up to 2 pixels 1/16 of the time
    keep_g = (1 - p / 2) * (1 - 3 * p / 4) * (1 - 15 * p / 16) * (1 - p) ** 4
    keep_c = (1 - p) ** 4 * (1 - p / 2)
    assert abs((~moved).float().mean() - keep_g) < 0.03 and abs((~recoloured).float().mean() - keep_c) < 0.03
    G1, C1 = ADA(p=1.0).matrices(gen(5), 64, 16, 16, 1)
    assert C1.shape == (64, 4, 4) and G1.shape == (64, 3, 3)


def only(name, n=4000, side=16):
    """The matrices of a pipeline with one transform, at p = 1."""
    ada = ADA(p=1.0, pipe="bgc", **{t: float(t == name) for t in ("xflip", "rotate90", "xint", "scale", "rotate",
                                                                      "aniso", "xfrac", "brightness", "contrast",
                                                                      "lumaflip", "hue", "saturation")})
    return ada.matrices(gen(9), n, side, side, 3)


def test_ada_draws_the_papers_distributions():
    eye3 = torch.eye(3)
    near = lambda a, b: abs(float(a) - b) < 0.05 * b                                        # noqa: E731
    G, _ = only("xflip")
    assert set(G[:, 0, 0].tolist()) == {-1.0, 1.0} and torch.equal(G[:, 1:], eye3[1:].expand(4000, 2, 3))
    G, _ = only("rotate90")
    assert set(G[:, :2, :2].flatten().tolist()) == {-1.0, 0.0, 1.0} and len(torch.unique(G, dim=0)) == 4
    G, _ = only("xint")                                                   # within 1/8 of 16 pixels, whole pixels
    t = G[:, :2, 2]
    assert torch.equal(t, t.round()) and t.abs().max() == 2 and set(t.flatten().tolist()) == {-2, -1, 0, 1, 2}
    G, _ = only("scale")
    assert torch.equal(G[:, 0, 0], G[:, 1, 1]) and near(torch.log2(G[:, 0, 0]).std(), 0.2)
    G, _ = only("aniso")
    assert torch.allclose(G[:, 0, 0] * G[:, 1, 1], torch.ones(4000)) and near(torch.log2(G[:, 1, 1]).std(), 0.2)
    G, _ = only("xfrac")
    assert near((G[:, :2, 2] / 16).std(), 0.125) and torch.equal(G[:, :2, :2], eye3[:2, :2].expand(4000, 2, 2))
    G, _ = only("rotate")                                                 # two uniform turns: a uniform turn
    lin = G[:, :2, :2]
    assert torch.allclose(lin @ lin.transpose(1, 2), eye3[:2, :2].expand(4000, 2, 2), atol=1e-6)
    assert abs(G[:, 0, 0].mean()) < 0.05 and near((G[:, 0, 0] < 0).float().mean(), 0.5)
    _, C = only("brightness")
    assert torch.equal(C[:, 0, 3], C[:, 2, 3]) and near(C[:, 0, 3].std(), 0.2)
    _, C = only("contrast")
    assert near(torch.log2(C[:, 0, 0]).std(), 0.5) and torch.equal(C[:, 0, 0], C[:, 2, 2])
    _, C = only("saturation")                                             # C00 = 1/3 + 2/3 s
    assert near(torch.log2((C[:, 0, 0] - 1 / 3) * 1.5).std(), 1.0)
    _, C = only("hue")                                                    # trace = 1 + 2 cos(theta), theta uniform
    cos = (C[:, :3, :3].diagonal(dim1=1, dim2=2).sum(1) - 1) / 2
    assert abs(cos.mean()) < 0.05 and near((cos < 0).float().mean(), 0.5)
    _, C = only("lumaflip")
    assert near((C[:, 0, 0] != 1).float().mean(), 0.5) and torch.allclose(C[C[:, 0, 0] != 1][:, :3, :3].det(),
                                                                           -torch.ones(1))
    assert torch.equal(only("lumaflip")[0], eye3.expand(4000, 3, 3))                      # no geometry


def test_one_channel_images_skip_hue_and_saturation_and_other_counts_are_refused():
    x = images(n=6, c=1)
    assert torch.equal(ADA(p=1.0, pipe="color", brightness=0, contrast=0, lumaflip=0)(x, gen()), x)
    assert ADA(p=1.0)(x, gen()).shape == x.shape
    two = images(n=2, c=2)
    with pytest.raises(UserError, match="1- or 3-channel"):
        ADA(p=0.5)(two, gen())
    assert ADA(p=1.0, pipe="bg")(two, gen()).shape == two.shape


def test_adjust_p_follows_the_sign_of_rt_and_stays_in_unit_interval():
    """The paper's speed: batch 64, every 4 D steps, 0 -> 1 in 500k images: 256 / 500000 per update."""
    step = 64 * 4 / 500_000
    p, trace = 0.0, []
    script = [0.2] * 3 + [0.7] * 10 + [0.6] * 2 + [0.5] * 4 + [0.9] * 2000
    for rt in script:
        p = adjust_p(p, rt, 0.6, 64 * 4, 500_000)
        trace.append(p)
    assert trace[:3] == [0.0] * 3                                   # below target at 0: stays at 0
    assert trace[12] == pytest.approx(10 * step)                    # 10 steps up
    assert trace[14] == trace[12]                                   # at the target: no move
    assert trace[18] == pytest.approx(6 * step)                     # 4 steps down
    assert max(trace) == 1.0 and trace[-1] == 1.0                   # 1953 steps reach 1 and stop there
    assert trace.index(1.0) == 19 + math.ceil((1 - 6 * step) / step) - 1
    with pytest.raises(UserError):
        adjust_p(0.5, 0.7, 0.6, 256, 0)


def test_ada_keeps_dtype_and_runs_on_any_side():
    x = images(n=3, side=12, dtype=torch.float64)
    y = ADA(p=1.0)(x, gen())
    assert y.dtype == torch.float64 and y.shape == x.shape and torch.isfinite(y).all()
