"""``python -m steerkit``: the same command as ``steerkit``."""
import sys

from .cli import main

sys.exit(main())
