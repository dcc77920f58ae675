"""``python -m segment_bridge`` runs the command line."""

import sys

from segment_bridge.cli import main

sys.exit(main())
