"""The ``publisher`` command's entry point (``python -m publisher`` is the same).

Warnings are routed into the log before the command's modules are imported, so a
dependency's import-time warning is a log line in the chosen format, never raw text.
"""

import gc

from publisher import logs


def main() -> None:
    logs.capture_warnings()
    from publisher.cli import main as cli

    try:
        cli(prog_name="publisher")
    finally:
        # The process ends: spare it the collector's last pass over every object it
        # holds (0.15 s of an empty `send`, issue 18); what it opened, it has closed.
        gc.freeze()


if __name__ == "__main__":
    main()
