"""deploy/compose and deploy/docker, checked by parsing (no container engine here, and the
docker compose plugin is not installable from this machine's Debian: `docker compose config`
never ran on them). The checks are shown refusing broken samples too."""

from __future__ import annotations

import re

import yaml

from newsradar.kafka import MAX_MESSAGE_BYTES, security_config
from tests.deploy.checks import (
    COMPOSE_DIR,
    DOCKERFILE,
    DOCKERIGNORE,
    IMAGE,
    REPO,
    cli_problems,
    compose_problems,
    dockerfile_instructions,
    dockerfile_problems,
    load_compose,
    mutated,
    newsradar_args,
)

COMPOSE = load_compose()
SHIPPED_PROMETHEUS = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
COMPOSE_PROMETHEUS = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())


# --- Dockerfile --------------------------------------------------------------------------------


def test_the_dockerfile_is_multi_stage_pinned_and_not_root():
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


def test_the_dockerfile_checks_refuse_what_they_should():
    good = DOCKERFILE.read_text()
    assert any("not pinned" in p for p in dockerfile_problems(good.replace("python:3.11.11-slim-bookworm", "python:3.11")))
    assert any("not pinned" in p for p in dockerfile_problems(good.replace("python:3.11.11-slim-bookworm", "python:latest")))
    assert any("runs as" in p for p in dockerfile_problems(re.sub(r"(?m)^USER .*$", "", good)))
    assert any("runs as" in p for p in dockerfile_problems(re.sub(r"(?m)^USER .*$", "USER root", good)))
    single = "FROM python:3.11.11-slim-bookworm\nUSER 10001\n"
    assert any("multi-stage" in p for p in dockerfile_problems(single))
    assert any("Prism" in p for p in dockerfile_problems(good + "COPY prism /usr/local/bin/prism\n"))
    assert any("names no earlier stage" in p for p in dockerfile_problems(good.replace("--from=build", "--from=builder")))


def test_the_image_packages_what_setup_py_packages_and_the_ignore_file_lets_it_in():
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    copied = {rest.split()[0] for word, rest in instructions if word == "COPY" and not rest.startswith("--from")}
    setup = (REPO / "setup.py").read_text()
    packages = set(re.search(r"packages=find_packages\(include=\[(.*?)\]", setup, re.S).group(1).replace('"', "").split(","))
    top = {p.strip().split(".")[0] for p in packages if p.strip()}
    assert top <= copied, f"packages setup.py ships but the image does not copy: {top - copied}"
    allowed = {line[1:].rstrip("/") for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")}
    named = {name for rest in copied for name in rest.split()}
    assert named <= allowed, f"COPY sources the ignore file leaves out: {named - allowed}"
    entry = [rest for word, rest in instructions if word == "ENTRYPOINT"][-1]
    assert entry == '["newsradar"]' and "newsradar=newsradar.cli:main" in setup


def test_the_base_image_python_is_one_setup_py_accepts():
    arg = [rest for word, rest in dockerfile_instructions(DOCKERFILE.read_text()) if word == "ARG"][0]
    minor = int(re.search(r"python:3\.(\d+)\.", arg).group(1))
    low, high = re.search(r'python_requires=">=3\.(\d+),<3\.(\d+)"', (REPO / "setup.py").read_text()).groups()
    assert int(low) <= minor < int(high)


# --- compose -----------------------------------------------------------------------------------


def test_the_compose_file_has_a_valid_structure_and_its_references_resolve():
    assert compose_problems(COMPOSE) == []


def test_the_compose_checks_refuse_what_they_should():
    svc = ["services", "connect"]
    assert any("unknown key 'comand'" in p for p in compose_problems(mutated(COMPOSE, [*svc, "comand"], ["x"])))
    assert any("depends_on unknown service" in p
               for p in compose_problems(mutated(COMPOSE, [*svc, "depends_on"], {"kafak": {"condition": "service_started"}})))
    assert any("not declared" in p for p in compose_problems(mutated(COMPOSE, [*svc, "volumes"], ["state:/x"])))
    assert any("does not exist" in p for p in compose_problems(mutated(COMPOSE, [*svc, "volumes"], ["./nope.yaml:/x"])))
    assert any("not pinned" in p for p in compose_problems(mutated(COMPOSE, ["services", "grafana", "image"], "grafana/grafana")))
    assert any("no healthcheck" in p for p in compose_problems(
        mutated(COMPOSE, [*svc, "depends_on"], {"deliver": {"condition": "service_healthy"}})))
    assert any("top-level key" in p for p in compose_problems({**COMPOSE, "service": {}}))


def test_the_compose_stack_has_every_part():
    services = COMPOSE["services"]
    for name in ("kafka", "topics", "connect", "deliver", "flink-jobmanager", "flink-taskmanager", "beam-worker-pool",
                 "beam-job-server", "pipeline", "prometheus", "alertmanager", "grafana"):
        assert name in services, name
    assert services["beam-worker-pool"]["network_mode"] == "service:flink-taskmanager"
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert int(kafka["KAFKA_MESSAGE_MAX_BYTES"]) == MAX_MESSAGE_BYTES


def test_the_compose_newsradar_command_lines_parse_with_the_real_cli():
    problems = []
    for name, svc in COMPOSE["services"].items():
        if svc.get("image") != IMAGE:
            continue
        assert svc.get("user") not in (None, "0", "root"), name
        security = {k: v for k, v in svc["environment"].items() if k.startswith("NEWSRADAR_KAFKA_")}
        security_config(security)  # raises on a setting newsradar would refuse
        args = newsradar_args(svc, compose=True)
        if args is not None:
            problems += [p for p in cli_problems(args, f"compose {name}") if not p.startswith("missing command")
                         or "'deliver'" not in p]
    assert not problems


def test_the_pipeline_uses_the_tested_portable_command_line_with_the_sidecar():
    args = newsradar_args(COMPOSE["services"]["pipeline"], compose=True)
    given = dict(zip(args, args[1:], strict=False))
    assert given["--runner"] == "PortableRunner" and given["--environment_type"] == "EXTERNAL"
    assert given["--environment_config"] == "localhost:50000"
    host = given["--job_endpoint"].split(":")[0]
    assert host in COMPOSE["services"]
    pool = COMPOSE["services"]["beam-worker-pool"]
    assert "--service_port=50000" in pool["command"]
    # the workers read the watchlist at the launcher's path
    watchlist_dir = given["--watchlist"].rsplit("/", 1)[0]
    assert any(v.split(":")[1] == watchlist_dir for v in pool["volumes"])


def test_compose_prometheus_keeps_the_shipped_jobs_and_rules_and_grafana_the_datasource_uid():
    jobs = lambda cfg: {s["job_name"] for s in cfg["scrape_configs"]}  # noqa: E731
    assert jobs(COMPOSE_PROMETHEUS) == jobs(SHIPPED_PROMETHEUS)
    assert COMPOSE_PROMETHEUS["rule_files"] == SHIPPED_PROMETHEUS["rule_files"]
    shipped_ds = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/newsradar.yml").read_text())
    compose_ds = yaml.safe_load((COMPOSE_DIR / "grafana-datasource.yml").read_text())
    assert [d["uid"] for d in compose_ds["datasources"]] == [d["uid"] for d in shipped_ds["datasources"]]
    provisioning = yaml.safe_load((REPO / "deploy/grafana/provisioning/dashboards/newsradar.yml").read_text())
    dashboards_at = provisioning["providers"][0]["options"]["path"]
    mounts = COMPOSE["services"]["grafana"]["volumes"]
    assert any(m.split(":")[1] == dashboards_at and m.split(":")[0].endswith("grafana/dashboards") for m in mounts)
