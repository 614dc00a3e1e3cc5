"""``python -m ganforge``: the ganforge command (ganforge.cli)."""
from .cli import main

raise SystemExit(main())
