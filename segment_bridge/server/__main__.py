"""``python -m segment_bridge.server``: the ``serve`` command on its own (same options and exit codes)."""

from __future__ import annotations

import sys

from segment_bridge.cli.serve import serve_only

if __name__ == "__main__":  # pragma: no cover - exercised in a subprocess
    sys.exit(serve_only())
