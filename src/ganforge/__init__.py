"""ganforge: train, measure and understand generative adversarial networks.

The public API: ``train`` (ganforge.train.start), ``load_run`` and ``Run`` (ganforge.api), ``load_generator``
(ganforge.export), ``load_config``, and the extension points ``register_loss``, ``register_family``,
``register_extractor`` and ``register_metric`` (docs/architecture.md shows each).
"""
from .version import __version__  # noqa: F401

from .api import Run, load_run  # noqa: E402
from .config import Config, load_config  # noqa: E402
from .errors import UserError  # noqa: E402
from .export import load_generator  # noqa: E402
from .losses import Loss, register_loss  # noqa: E402
from .metrics import Metric, Score, register_extractor, register_metric  # noqa: E402
from .nets import Family, register_family  # noqa: E402
from .train.start import train  # noqa: E402

__all__ = ["Config", "Family", "Loss", "Metric", "Run", "Score", "UserError", "load_config", "load_generator",
           "load_run", "register_extractor", "register_family", "register_loss", "register_metric", "train",
           "__version__"]
