"""newsradar: streaming news monitoring for mobilization, protests and watched organizations.

This package is the small shared core that connectors, transforms and pipelines all import:
the record schema (:mod:`newsradar.records`), configuration (:mod:`newsradar.config`),
the Kafka client settings (:mod:`newsradar.kafka`), local paths (:mod:`newsradar.paths`),
the metrics registry (:mod:`newsradar.metrics`) and the safe fetch rules (:mod:`newsradar.netguard`).
It imports nothing from those packages, nor from :mod:`newsradar.cli`, the command line and local
stack that sit on top of every layer.
"""

__version__ = "0.1.0"
