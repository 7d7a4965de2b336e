"""The command line and the local stack: the top floor, which imports every layer below it.

``commands`` is the ``newsradar`` command group; ``up`` supervises a local stack (broker,
demo feed server, connectors, pipeline); ``broker`` runs the single-node Kafka the tests and
``newsradar up`` use; ``liveview`` is the terminal view; ``demo`` serves the demo's articles.
Nothing under ``newsradar`` outside this package, nor ``connectors``, ``transforms`` or
``pipelines``, imports from here (``tests/test_layers.py`` enforces it).
"""

from newsradar.cli.commands import main

__all__ = ["main"]
