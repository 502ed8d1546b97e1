"""``python -m airloop`` is the ``airloop`` command."""

from airloop.cli.main import main

main()
