"""``python -m soundanomaly`` runs the command line."""

import sys

from soundanomaly.cli import main

sys.exit(main())
