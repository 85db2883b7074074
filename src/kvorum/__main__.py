"""``python -m kvorum``: the same as the ``kvorum`` command."""

from kvorum.cli import main

main()
