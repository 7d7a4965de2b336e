"""``python -m newsradar.cli``: the same command line as the ``newsradar`` script."""

from newsradar.cli.commands import main

main()
