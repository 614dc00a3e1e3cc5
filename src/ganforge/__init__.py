"""ganforge: train, measure and understand generative adversarial networks."""
__version__ = "0.1.0"

from .api import Run, load_run, train  # noqa: E402
from .config import Config, load_config  # noqa: E402
from .errors import UserError  # noqa: E402
from .export import load_generator  # noqa: E402

__all__ = ["Config", "Run", "UserError", "load_config", "load_generator", "load_run", "train", "__version__"]
