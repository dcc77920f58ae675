"""``python -m segment_bridge`` and the ``segment-bridge`` command (its entry point is :func:`run`)."""

import sys


def run() -> int:
    """Load the command line and run it; returns the exit status.

    Loading the libraries takes a moment: a Ctrl-C in it (or before a command has set its own handling up) is one
    line and status 130, like a Ctrl-C later, never a traceback.
    """
    try:
        from segment_bridge.cli import main

        return main()
    except KeyboardInterrupt:
        sys.stderr.write("segment-bridge: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(run())
