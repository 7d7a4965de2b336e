"""TLS and SASL settings for every Kafka client, from NEWSRADAR_KAFKA_* (newsradar.kafka.security_config)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from newsradar import kafka
from newsradar.kafka import KafkaSecurityError, UnsafeProducerConfig, producer_config, security_config

ROOT = Path(__file__).resolve().parents[2]
CLIENT_CLASSES = {"KafkaConsumer", "KafkaProducer", "KafkaAdminClient"}


def test_nothing_set_is_plaintext_with_no_extra_settings():
    assert security_config({"PATH": "/bin", "NEWSRADAR_HOME": "/x"}) == {}


def test_sasl_ssl_with_scram_and_a_ca_file(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {
        "NEWSRADAR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "NEWSRADAR_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "NEWSRADAR_KAFKA_SASL_PLAIN_USERNAME": "newsradar",
        "NEWSRADAR_KAFKA_SASL_PLAIN_PASSWORD": "s3cret",
        "NEWSRADAR_KAFKA_SSL_CAFILE": str(ca),
        "NEWSRADAR_KAFKA_SSL_CHECK_HOSTNAME": "False",
    }
    assert security_config(env) == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "newsradar",
        "sasl_plain_password": "s3cret", "ssl_cafile": str(ca), "ssl_check_hostname": False,
    }


@pytest.mark.parametrize(("env", "says"), [
    ({"NEWSRADAR_KAFKA_SECURITY_PROTOCOL": "TLS"}, "use one of"),
    ({"NEWSRADAR_KAFKA_SECURITY_PROTOCL": "SSL"}, "unknown variable(s) NEWSRADAR_KAFKA_SECURITY_PROTOCL"),
    ({"NEWSRADAR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs NEWSRADAR_KAFKA_SASL_MECHANISM"),
    ({"NEWSRADAR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "NEWSRADAR_KAFKA_SASL_MECHANISM": "GSSAPI"},
     "needs NEWSRADAR_KAFKA_SASL_MECHANISM"),
    ({"NEWSRADAR_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "NEWSRADAR_KAFKA_SASL_MECHANISM": "PLAIN",
      "NEWSRADAR_KAFKA_SASL_PLAIN_USERNAME": "u"}, "needs NEWSRADAR_KAFKA_SASL_PLAIN_PASSWORD"),
    ({"NEWSRADAR_KAFKA_SASL_MECHANISM": "PLAIN"}, "the protocol is PLAINTEXT"),
    ({"NEWSRADAR_KAFKA_SECURITY_PROTOCOL": "SSL", "NEWSRADAR_KAFKA_SSL_CHECK_HOSTNAME": "no"}, "true or false"),
    ({"NEWSRADAR_KAFKA_SECURITY_PROTOCOL": "SSL", "NEWSRADAR_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
     "cannot read /nonexistent/ca.pem"),
])
def test_a_setting_that_cannot_work_is_refused_not_ignored(env, says):
    with pytest.raises(KafkaSecurityError) as err:
        security_config(env)
    assert says in str(err.value)


def test_the_producer_config_carries_the_environment_settings_and_keeps_acks_all(monkeypatch):
    monkeypatch.setenv("NEWSRADAR_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("NEWSRADAR_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("NEWSRADAR_KAFKA_SASL_PLAIN_USERNAME", "u")
    monkeypatch.setenv("NEWSRADAR_KAFKA_SASL_PLAIN_PASSWORD", "p")
    config = producer_config("broker:9093", "newsradar-connect", linger_ms=1)
    assert config["security_protocol"] == "SASL_PLAINTEXT" and config["sasl_plain_password"] == "p"
    assert config["acks"] == "all" and config["enable_idempotence"] is True and config["linger_ms"] == 1
    with pytest.raises(UnsafeProducerConfig):
        producer_config("broker:9093", acks=1)


class _Recorder:
    def __init__(self, **config):
        self.config = config


@pytest.mark.parametrize(("factory", "cls"), [("make_consumer", "KafkaConsumer"), ("make_admin", "KafkaAdminClient"),
                                              ("make_producer", "KafkaProducer")])
def test_every_factory_hands_the_settings_to_the_client(monkeypatch, factory, cls):
    import kafka as kafka_python

    monkeypatch.setattr(kafka_python, cls, _Recorder)
    monkeypatch.setenv("NEWSRADAR_KAFKA_SECURITY_PROTOCOL", "SSL")
    client = getattr(kafka, factory)("broker:9093", client_id="t")
    assert client.config["security_protocol"] == "SSL"
    assert client.config["bootstrap_servers"] == "broker:9093" and client.config["client_id"] == "t"
    monkeypatch.setenv("NEWSRADAR_KAFKA_SECURITY_PROTOCOL", "SSLv3")
    with pytest.raises(KafkaSecurityError):
        getattr(kafka, factory)("broker:9093", client_id="t")


def _client_constructions(path: Path) -> list[int]:
    """Lines of ``path`` that call a kafka-python client class directly."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call)
            and (getattr(node.func, "id", None) in CLIENT_CLASSES or getattr(node.func, "attr", None) in CLIENT_CLASSES)]


def test_no_client_is_built_outside_the_factories():
    """A client built elsewhere would ignore NEWSRADAR_KAFKA_* and talk plaintext to a secured cluster."""
    offenders = []
    for package in ("newsradar", "connectors", "transforms", "pipelines"):
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = _client_constructions(path)
            if path == ROOT / "newsradar" / "kafka.py":
                assert len(lines) == 3, "newsradar/kafka.py: one construction per factory"
                continue
            offenders += [f"{path.relative_to(ROOT)}:{n}" for n in lines]
    assert not offenders, f"build Kafka clients with newsradar.kafka.make_*: {offenders}"


def test_the_checker_sees_a_direct_construction(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("from kafka import KafkaConsumer\nimport kafka\nc = KafkaConsumer()\nd = kafka.KafkaAdminClient()\n")
    assert _client_constructions(sample) == [3, 4]


def test_a_command_with_a_bad_setting_says_which_and_exits_2(monkeypatch):
    from click.testing import CliRunner

    from newsradar.cli import main

    monkeypatch.setenv("NEWSRADAR_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    result = CliRunner().invoke(main, ["kafka", "topics", "--bootstrap-servers", "127.0.0.1:1"])
    assert result.exit_code == 2, result.output
    assert "kafka security settings: SASL_SSL needs NEWSRADAR_KAFKA_SASL_MECHANISM" in result.output
