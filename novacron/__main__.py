"""``python -m novacron``: the ``novacron`` command, for environments without its script on PATH."""

import sys

from novacron.cli import main

sys.exit(main())
