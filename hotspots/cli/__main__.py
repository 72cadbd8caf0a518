"""``python -m hotspots.cli``: the ``hotspots`` command."""

import sys

from . import main

sys.exit(main())
