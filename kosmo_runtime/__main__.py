"""``python -m kosmo_runtime``: the ``kosmo`` command."""

import sys

from ._cli import main

sys.exit(main())
