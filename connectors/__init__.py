"""Connectors: pull RSS/Atom feeds and Telegram channels and produce them into Kafka. No Beam imports."""
