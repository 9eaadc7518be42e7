"""``python -m catviz``: the app (and its ``export`` command), as the ``catviz`` script."""

import sys

from .app import main

sys.exit(main())
