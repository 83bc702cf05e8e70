"""``python -m sync.collector``: the same as the ``gate-collector`` command."""

from sync.collector.cli import main

main()
