"""newsradar: the one install recipe (also what Beam ships to remote workers via --setup_file).

Why each dependency and its range: docs/dependencies.md.
"""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    # streaming engine; the 2.77 line is what the runner facts in docs/design.md, "Runners", were measured on
    "apache-beam>=2.77.0,<2.78",
    # Kafka client (pure Python); 3.x knows the Kafka 4.x protocol versions
    "kafka-python>=3.0.12,<4",
    # fast CRC32C for kafka-python record batches (~100x faster encoding, docs/design.md, "Measured facts")
    "crc32c>=2.4,<3",
    # feed parsing over bytes we fetched ourselves
    "feedparser>=6.0.11,<6.1",
    # tokenization and lemma matching; blank pipelines only, no model downloads
    "spacy>=3.8.2,<3.9",
    "spacy-lookups-data>=1.0.5,<1.1",
    "pymorphy3>=2.0.2,<3",
    "pymorphy3-dicts-ru>=2.4.417150,<3",
    "pymorphy3-dicts-uk>=2.4.1,<3",
    # pymorphy3's C dictionary backend (its "fast" extra): ~4x faster on uncached word forms
    "DAWG2>=0.9,<1",
    # metrics endpoints
    "prometheus-client>=0.20,<1",
    # our own async HTTP client for feeds, Telegram and webhooks (custom resolver, caps)
    "aiohttp>=3.9.5,<4",
    # config: safe YAML, validated into frozen models
    "PyYAML>=6.0.1,<7",
    "pydantic>=2.7,<3",
    # command line and the live terminal view
    "click>=8.1.7,<9",
    "rich>=13.7,<16",
    # near-duplicate sketches (MinHash + LSH)
    "datasketch>=2.0,<3",
    # language identification with bundled models (no downloads at run time)
    "lingua-language-detector>=2.0.2,<3",
    # fast, forgiving HTML parsing (html -> text, t.me/s pages)
    "selectolax>=0.3.21,<2",
    # streaming JSON for Telegram Desktop exports of any size
    "ijson>=3.2,<4",
    # Russian named entities for `newsradar candidates` and news.candidates: slovnet's NER model
    # and navec's embeddings, both read from the files natasha ships (nothing downloaded at run
    # time); natasha's own morphology (pymorphy2) is never imported, it breaks on Python 3.11
    "natasha>=1.6,<1.7",
    "slovnet>=0.6,<0.7",
    "navec>=0.10,<0.11",
]

EXTRAS = {
    "test": [
        "pytest>=8,<10",
        "pytest-timeout>=2.3,<3",
        "ruff>=0.6,<1",
        # property tests of hostile input (tests/pipelines/test_fuzz.py, benchmarks/fuzz.py)
        "hypothesis>=6.100,<7",
        # the MTProto mapping is tested with Telethon's own message objects
        "telethon>=1.36,<2",
        # deploy/kubernetes core kinds validated offline against bundled schemas (tests/deploy/test_manifests.py)
        "kubernetes-validate>=1.31,<2",
        # custom resources against the operators' CRD schemas (kubernetes-validate depends on it too)
        "jsonschema>=4.23,<5",
        # the backtest report's screenshot from headless Chromium is read back (tests/pipelines/test_backtest_browser.py)
        "pillow>=10,<13",
        # a real SMTP server on 127.0.0.1 for the email sink's tests (tests/newsradar/delivery/)
        "aiosmtpd>=1.4.6,<2",
        # the self-signed certificate of that server's STARTTLS (apache-beam installs it too)
        "cryptography>=42",
    ],
    "telegram": [
        "telethon>=1.36,<2",
    ],
}

setup(
    name="newsradar",
    version="0.1.0",
    description="Streaming news monitoring for mobilization, protests and watched organizations",
    license="Apache-2.0",
    python_requires=">=3.11,<3.13",
    packages=find_packages(include=["newsradar", "newsradar.*", "connectors", "connectors.*",
                                    "transforms", "transforms.*", "pipelines", "pipelines.*"]),
    include_package_data=True,
    # the demo's articles are read with importlib.resources (also from a non-editable install)
    package_data={"newsradar": ["cli/demo/*.yaml", "models/*.json"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["newsradar=newsradar.cli:main"]},
)
