"""newsradar: streaming news monitoring for mobilization, protests and watched organizations.

This package is the small shared core that connectors, transforms and pipelines all import:
the record schema (:mod:`newsradar.records`), configuration (:mod:`newsradar.config`),
the Kafka client settings (:mod:`newsradar.kafka`), local paths (:mod:`newsradar.paths`) and
the command line (:mod:`newsradar.cli`). It imports nothing from those packages.
"""

__version__ = "0.1.0"
