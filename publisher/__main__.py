"""The ``publisher`` command's entry point (``python -m publisher`` is the same).

Warnings are routed into the log before the command's modules are imported, so a
dependency's import-time warning is a log line in the chosen format, never raw text.
"""

from publisher import logs


def main() -> None:
    logs.capture_warnings()
    from publisher.cli import main as cli

    cli(prog_name="publisher")


if __name__ == "__main__":
    main()
