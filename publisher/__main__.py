"""``python -m publisher`` is the same as the ``publisher`` command."""

from publisher.cli import main

main(prog_name="publisher")
