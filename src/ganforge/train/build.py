"""What a trainer is built of, from the config: the device and threads, the nets, the optimizers and their
learning-rate schedule, the GAN game's options and the fixed codes of the sample grids."""
from __future__ import annotations


import torch

from ..data.batches import Batches
from ..device import pick_device
from ..errors import UserError
from ..games.gan import GANGame, GANOptions, Regularizer
from ..losses import LOSSES
from ..nets import FAMILIES, build_nets
from ..nets.transfer import freeze
from ..rng import Stream, derive
from . import distributed


def deterministic_cuda() -> None:
    """Deterministic kernels on a GPU, so that a resumed run equals an uninterrupted one there too: no cuDNN
    autotuning (it picks algorithms by timing), cuDNN's and cuBLAS's deterministic algorithms, and a warning
    for any op left without one (nets.exact replaces the ones ganforge's nets use). PyTorch, "Reproducibility"."""
    import os
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def make_optimizer(params, o) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba 2015), RMSprop or SGD with the config's settings.

    Adam uses the fused kernel where torch has one for the parameters' device
    (3-5x faster than the multi-tensor path on a CPU, measured on the toy MLP).
    Frozen parameters (FreezeD's blocks, ``model.freeze_d``) are left out: no update, no moments, no decay.
    """
    params = [p for p in params if p.requires_grad]
    if o.name == "adam":
        fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
        return torch.optim.Adam(params, lr=o.lr, betas=(float(o.beta1), float(o.beta2)), weight_decay=o.weight_decay,
                                **({"fused": True} if fused else {"foreach": True}))
    if o.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=o.lr, alpha=o.beta2, weight_decay=o.weight_decay, foreach=True)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.beta1, weight_decay=o.weight_decay, foreach=True)


def placement(cfg):
    """(the data-parallel group, the device) of this process; sets torch's threads and deterministic CUDA."""
    dist = distributed.from_env(cfg.device)
    device = torch.device(dist.device) if dist.active else pick_device(cfg.device)
    if device.type == "cuda":
        deterministic_cuda()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif dist.active and device.type == "cpu":
        torch.set_num_threads(distributed.threads_per_rank())
    return dist, device


def nets(cfg, data, dist, device) -> tuple:
    """G and D for the data, initialised from the run's seed, on the device (synchronised batch norm under
    data parallelism, channels-last for convolutional families, D's first model.freeze_d blocks frozen)."""
    pack = getattr(cfg.model.arch, "pack", 1)
    if cfg.batch_size % pack:
        raise UserError(f"batch_size={cfg.batch_size} must be a multiple of model.pack={pack}")
    distributed.check_batch(cfg.batch_size, dist, pack)
    torch.manual_seed(derive(cfg.seed, "init"))
    G, D = build_nets(cfg.model, data.shape, len(data.classes or ()), data.shape_a)
    if dist.active and cfg.sync_bn:
        from .syncbn import convert
        G, D = convert(G), convert(D)
    G, D = G.to(device), D.to(device)
    if FAMILIES[cfg.model.name].convolutional and cfg.channels_last:
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)
    freeze(D, cfg.model.freeze_d, cfg.model.name)      # FreezeD: before the optimizers are made
    return G, D


def batches(cfg, data, device, dist) -> Batches:
    """The real batches of a run: seeded, with this process's rows."""
    return Batches(data, cfg.batch_size, cfg.seed, device, rows=dist.rows(cfg.batch_size), mirror=cfg.data.mirror,
                   workers=cfg.data.workers)


def streams(cfg, data, device, dist, made=None) -> tuple:
    """(real batches (``made`` if given), the z stream, the aux stream) of a run."""
    return (made or batches(cfg, data, device, dist),
            Stream(cfg.seed, "z", device), Stream(cfg.seed, "aux", device))


def gan_game(trainer) -> GANGame:
    """The GAN game of a trainer, from its nets (compiled with ``compile=true``), optimizers, batches, streams,
    precision and data-parallel group, with the options the config gives."""
    cfg, G, D = trainer.cfg, trainer.G, trainer.D
    reg = Regularizer(cfg.penalty.name, cfg.penalty.weight or 0.0, cfg.penalty.every or 1, cfg.penalty.r2_weight)
    if cfg.compile:
        from .precision import compiled
        G = compiled(G, trainer.warn)
        if reg.name in ("none",) or not reg.weight:
            D = compiled(D, trainer.warn)
        else:                                   # aot_autograd has no double backward (torch 2.13)
            trainer.warn(f"compile=true: D stays eager because penalty {reg.name} needs a double backward, "
                         "which torch.compile does not support; G is compiled")
    options = GANOptions(LOSSES[cfg.loss], reg, cfg.clip or 0.0, cfg.d_steps, cfg.batch_size, trainer.G.n_classes,
                         acgan=cfg.model.conditional and cfg.model.d_cond == "acgan", ac_weight=cfg.model.ac_weight)
    return GANGame(G, D, trainer.opt_g, trainer.opt_d, options, batches=trainer.batches, z_stream=trainer.z_stream,
                   aux_stream=trainer.aux_stream, precision=trainer.precision, dist=trainer.dist,
                   augment=augmenter(cfg, trainer.data, trainer.device, trainer.dist))


def augmenter(cfg, data, device, dist):
    """What D's inputs go through (augment=diffaug or ada; games.augment), or None for augment=none."""
    a = cfg.augment
    if a.name == "none":
        return None
    if data.kind != "image":
        raise UserError(f"augment={a.name} transforms images; {cfg.data.name} holds points")
    from ..augment import make
    from ..games.augment import Augmenter
    pipe = make("diffaug", policy=a.policy) if a.name == "diffaug" else make("ada", pipe=a.pipe)
    adaptive = a.name == "ada" and a.p is None
    return Augmenter(pipe, Stream(cfg.seed, "augment", device), cfg.batch_size, dist.rows(cfg.batch_size), dist,
                     adaptive=adaptive, p=a.p or 0.0, target=a.target, interval=a.interval,
                     speed=a.speed_kimg * 1000.0)


def fixed_codes(cfg, classes: int, kind: str, device) -> tuple:
    """(z, labels or None, samples per class row) of the run's sample grids: the same every dump."""
    n_fixed = cfg.log.n_samples or (8 * classes if classes and kind == "image" else 64 if kind == "image" else 1000)
    z = torch.randn(n_fixed, cfg.model.z_dim, generator=Stream(cfg.seed, "fixed-z").next()).to(device)
    if not classes:
        return z, None, None
    # conditional: the labels in blocks, so that an image grid has one row per class
    per = max(1, n_fixed // classes)
    return z, (torch.arange(n_fixed) // per).clamp(max=classes - 1).to(device), per
