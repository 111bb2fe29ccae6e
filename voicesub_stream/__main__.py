"""``python -m voicesub_stream``: the ``voicesub`` command."""

from .cli import main

main()
