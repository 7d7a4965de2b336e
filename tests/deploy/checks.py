"""Offline checks of deploy/'s Dockerfile, compose file and Kubernetes manifests.

Plain functions that return the problems they find (an empty list: none), so the tests can show
each check refusing a broken sample as well as passing the shipped files. Nothing here runs a
container: there is no container engine, cluster or compose plugin on the development machine.
"""

from __future__ import annotations

import copy
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / "deploy" / "docker" / "Dockerfile.dockerignore"
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
K8S_DIR = REPO / "deploy" / "kubernetes"
# Unmodified copies of the operators' CRDs next to the checkout, read in place (never copied here).
CRD_DIR = REPO.parent / "shared" / "k8s-crds"
# The Kubernetes version the core kinds are validated against (a recent release kubernetes-validate knows).
K8S_VERSION = "1.31.0"
IMAGE = "newsradar:0.1.0"


# --- Dockerfile ------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


# name:MAJOR.MINOR.PATCH[-variant] (a "v" allowed before it); not :latest, not a bare 3.11
_PINNED_TAG = re.compile(r"^[\w.\-/]+:v?\d+\.\d+\.\d+[\w.\-]*$")


def dockerfile_problems(text: str) -> list[str]:
    """Multi-stage, every base image pinned to a version, the final stage not root, COPY --from
    naming an earlier stage, no Prism binary copied in."""
    problems = []
    args: dict[str, str] = {}
    stages: list[dict] = []
    for word, rest in dockerfile_instructions(text):
        if word == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif word == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append({"image": image, "name": name, "user": None})
            if not _PINNED_TAG.match(image):
                problems.append(f"FROM {parts[0]} (= {image}) is not pinned to a version tag")
        elif word == "USER" and stages:
            stages[-1]["user"] = rest.split(":")[0]
        elif word == "COPY" and stages:
            m = re.search(r"--from=(\S+)", rest)
            earlier = {s["name"] for s in stages[:-1]}
            if m and m.group(1) not in earlier:
                problems.append(f"COPY --from={m.group(1)} names no earlier stage ({sorted(n for n in earlier if n)})")
            if "prism" in rest.lower():
                problems.append(f"COPY {rest}: the Prism binary is not part of the image")
    if len(stages) < 2:
        problems.append(f"{len(stages)} stage(s): expected a multi-stage build")
    if stages and stages[-1]["user"] in (None, "root", "0"):
        problems.append(f"the final stage runs as {stages[-1]['user'] or 'root (no USER)'}")
    return problems


# --- manifests: loading ----------------------------------------------------------------------


def k8s_files() -> list[Path]:
    return sorted(K8S_DIR.rglob("*.yaml"))


def k8s_documents() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in k8s_files()
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


_OBJECT_META = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}


def _close(schema: object, root: bool = False) -> object:
    """The CRD schema as the API server applies it to a create with strict field validation:
    an object with ``properties`` accepts no other field unless it says so
    (``additionalProperties``, ``x-kubernetes-preserve-unknown-fields``); apiVersion, kind and
    metadata are implied at the root and in embedded resources."""
    if isinstance(schema, dict):
        out = {k: _close(v) for k, v in schema.items()}
        if root or out.get("x-kubernetes-embedded-resource"):
            out["properties"] = {**_OBJECT_META, **out.get("properties", {})}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_close(v) for v in schema]
    return schema


def crd_schemas() -> dict[tuple[str, str], dict]:
    """``{(apiVersion, kind): closed openAPIV3Schema}`` from the CRDs in CRD_DIR (read in place)."""
    out = {}
    for path in sorted(CRD_DIR.glob("*.y*ml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            out[(f"{group}/{version['name']}", kind)] = _close(version["schema"]["openAPIV3Schema"], root=True)
    return out


CUSTOM_GROUPS = ("flink.apache.org/", "monitoring.coreos.com/")


def is_custom(doc: dict) -> bool:
    return doc.get("apiVersion", "").startswith(CUSTOM_GROUPS)


def core_problems(doc: dict, version: str = K8S_VERSION) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        return [f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}: {path}: {exc.message}"]
    return []


def custom_problems(doc: dict, schemas: dict[tuple[str, str], dict]) -> list[str]:
    import jsonschema

    name = f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}"
    schema = schemas.get((doc.get("apiVersion"), doc.get("kind")))
    if schema is None:
        return [f"{name}: no CRD for {doc.get('apiVersion')} {doc.get('kind')} in {CRD_DIR}"]
    validator = jsonschema.Draft7Validator(schema)
    return [f"{name}: {'/'.join(map(str, e.path))}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))]


# --- manifests: how the pieces refer to each other -------------------------------------------


def pod_specs(doc: dict) -> Iterator[tuple[str, dict]]:
    """(where, pod spec) of a Deployment, StatefulSet or Job, or a FlinkDeployment's pod templates."""
    name = f"{doc['kind']} {doc['metadata']['name']}"
    if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
        yield name, doc["spec"]["template"]["spec"]
    elif doc["kind"] == "FlinkDeployment":
        for part in ("podTemplate",):
            if part in doc["spec"]:
                yield f"{name} {part}", doc["spec"][part]["spec"]
        for role in ("jobManager", "taskManager"):
            template = doc["spec"].get(role, {}).get("podTemplate")
            if template:
                yield f"{name} {role}", template["spec"]


def reference_problems(docs: list[dict]) -> list[str]:
    """ConfigMaps, claims and probe ports that pods name exist; Services and monitors select
    something; the monitors' port names are the Services' and pods'."""
    defined = {(d["kind"], d["metadata"]["name"]) for d in docs}
    problems = []
    pod_labels: list[dict] = []
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            pod_labels.append(doc["spec"]["template"]["metadata"].get("labels", {}))
            if doc["spec"]["selector"]["matchLabels"].items() > pod_labels[-1].items():
                problems.append(f"{doc['kind']} {doc['metadata']['name']}: selector does not match its pod labels")
        for where, spec in pod_specs(doc):
            for volume in spec.get("volumes", []):
                if "configMap" in volume and ("ConfigMap", volume["configMap"]["name"]) not in defined:
                    problems.append(f"{where}: volume {volume['name']}: no ConfigMap {volume['configMap']['name']}")
                claim = volume.get("persistentVolumeClaim", {}).get("claimName")
                if claim and ("PersistentVolumeClaim", claim) not in defined:
                    problems.append(f"{where}: volume {volume['name']}: no PersistentVolumeClaim {claim}")
            volumes = {v["name"] for v in spec.get("volumes", [])}
            for container in spec.get("containers", []):
                ports = {p.get("name") for p in container.get("ports", [])}
                for mount in container.get("volumeMounts", []):
                    if mount["name"] not in volumes:
                        problems.append(f"{where}/{container['name']}: mounts undefined volume {mount['name']}")
                for source in container.get("envFrom", []):
                    ref = source.get("configMapRef", {}).get("name")
                    if ref and ("ConfigMap", ref) not in defined:
                        problems.append(f"{where}/{container['name']}: envFrom names no ConfigMap {ref}")
                for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                    action = container.get(probe, {})
                    port = (action.get("httpGet") or action.get("tcpSocket") or {}).get("port")
                    if isinstance(port, str) and port not in ports:
                        problems.append(f"{where}/{container['name']}: {probe} port {port!r} is not a named port")
    services = [d for d in docs if d["kind"] == "Service"]
    for svc in services:
        selector = svc["spec"].get("selector", {})
        if not any(selector.items() <= labels.items() for labels in pod_labels):
            problems.append(f"Service {svc['metadata']['name']}: selector {selector} matches no pod template")
    for mon in (d for d in docs if d["kind"] == "ServiceMonitor"):
        want = mon["spec"]["selector"]["matchLabels"]
        ports = {p["port"] for p in mon["spec"]["endpoints"]}
        hits = [s for s in services if want.items() <= s["metadata"].get("labels", {}).items()]
        if not hits:
            problems.append(f"ServiceMonitor {mon['metadata']['name']}: selects no Service ({want})")
        for svc in hits:
            missing = ports - {p.get("name") for p in svc["spec"]["ports"]}
            if missing:
                problems.append(f"ServiceMonitor {mon['metadata']['name']}: Service {svc['metadata']['name']} "
                                f"has no port {sorted(missing)}")
    for mon in (d for d in docs if d["kind"] == "PodMonitor"):
        port = {e["port"] for e in mon["spec"]["podMetricsEndpoints"]}
        flink = [d for d in docs if d["kind"] == "FlinkDeployment"
                 and mon["spec"]["selector"]["matchLabels"] == {"app": d["metadata"]["name"]}]
        if not flink:
            problems.append(f"PodMonitor {mon['metadata']['name']}: selects no FlinkDeployment's pods")
        for d in flink:
            for where, spec in pod_specs(d):
                main = [c for c in spec["containers"] if c["name"] == "flink-main-container"]
                if not main or not port <= {p.get("name") for p in main[0].get("ports", [])}:
                    problems.append(f"{where}: flink-main-container has no port {sorted(port)} for the PodMonitor")
    return problems


# --- newsradar command lines -----------------------------------------------------------------


def sink_secret_problems(watchlist, spec: dict, container: dict, home: str = "/var/lib/newsradar") -> list[str]:
    """Whether the deliver container can read every secret the watchlist's sinks refer to: a
    ``*_file`` under a mount of a Secret volume (an absolute path; a relative one would be on
    the state volume), a ``*_env`` set by the container's ``env`` or sourced from a Secret
    (``envFrom: secretRef``)."""
    secret_volumes = {v["name"] for v in spec.get("volumes", []) if "secret" in v}
    secret_dirs = [m["mountPath"].rstrip("/") + "/" for m in container.get("volumeMounts", [])
                   if m["name"] in secret_volumes]
    env_names = {e["name"] for e in container.get("env", [])}
    env_from_secret = any("secretRef" in source for source in container.get("envFrom", []))
    problems = []
    for i, sink in enumerate(watchlist.alerts.sinks):
        for field in type(sink).model_fields:
            value = getattr(sink, field)
            if value is None or not field.endswith(("_env", "_file")) or field == "ca_file":
                continue
            where = f"alerts.sinks[{i}].{field}"
            if field.endswith("_file"):
                if not value.startswith("/"):
                    problems.append(f"{where}: {value!r} is relative to NEWSRADAR_HOME ({home}), the state volume, "
                                    "not a mounted Secret")
                elif not any(value.startswith(d) for d in secret_dirs):
                    problems.append(f"{where}: {value} is under no mounted Secret ({', '.join(secret_dirs) or 'none'})")
            elif value not in env_names and not env_from_secret:
                problems.append(f"{where}: nothing sets the environment variable {value}")
    return problems


def newsradar_args(container: dict, compose: bool = False) -> list[str] | None:
    """The newsradar command line a Kubernetes container (``command`` + ``args``) or a compose
    service (``entrypoint`` + ``command``) runs; the image's entrypoint is ``newsradar``.
    ``None``: it runs something else."""
    entry_key, args_key = ("entrypoint", "command") if compose else ("command", "args")

    def words(value) -> list[str]:
        return shlex.split(value) if isinstance(value, str) else list(value or [])

    entry = words(container.get(entry_key)) or ["newsradar"]
    if entry[0] != "newsradar":
        return None
    return entry[1:] + words(container.get(args_key))


def cli_problems(args: list[str], where: str) -> list[str]:
    """Parse ``newsradar <args>`` with the real command line (nothing is run). A subcommand this
    checkout does not have yet is reported as such, with the prefix ``missing command``."""
    import click

    from newsradar.cli import main

    command, rest, name = main, list(args), "newsradar"
    try:
        while isinstance(command, click.Group):
            if not rest:
                return [f"{where}: newsradar {' '.join(args)}: no command given"]
            name, rest = rest[0], rest[1:]
            found = command.get_command(click.Context(command), name)
            if found is None:
                prefix = "missing command: " if command is main else ""
                return [f"{prefix}{where}: newsradar has no command {' '.join(args[:len(args) - len(rest)])!r}"]
            command = found
        command.make_context(name, rest)
    except click.UsageError as exc:
        return [f"{where}: newsradar {' '.join(args)}: {exc.format_message()}"]
    return []


# --- compose ---------------------------------------------------------------------------------

COMPOSE_TOP = {"name", "services", "volumes", "networks", "configs", "secrets", "include", "version"}
# Service keys of the Compose Specification that this check knows (a subset: an unknown key is
# more likely a typo here than a feature this file needs).
COMPOSE_SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "volumes", "ports", "expose",
    "depends_on", "restart", "healthcheck", "user", "working_dir", "network_mode", "networks",
    "stop_grace_period", "stop_signal", "labels", "logging", "deploy", "ulimits", "mem_limit", "cpus",
    "read_only", "tmpfs", "cap_drop", "cap_add", "security_opt", "hostname", "init", "profiles", "secrets",
    "configs", "extra_hosts",
}
_DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
_HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}


def compose_problems(compose: dict, base: Path = COMPOSE_DIR) -> list[str]:
    """Structure of a compose file as ``docker compose config`` would refuse it, and references:
    depends_on targets and conditions, named volumes declared, bind-mount sources present,
    network_mode service targets, healthchecks that a service can run, pinned images."""
    problems = [f"top-level key {k!r} is not in the Compose Specification" for k in compose
                if k not in COMPOSE_TOP and not k.startswith("x-")]
    services = compose.get("services") or {}
    named_volumes = set(compose.get("volumes") or {})
    for name, svc in services.items():
        where = f"service {name}"
        problems += [f"{where}: unknown key {k!r}" for k in svc if k not in COMPOSE_SERVICE_KEYS]
        image = svc.get("image")
        if not image and "build" not in svc:
            problems.append(f"{where}: neither image nor build")
        elif image and not _PINNED_TAG.match(image):
            problems.append(f"{where}: image {image} is not pinned to a version tag")
        deps = svc.get("depends_on") or []
        for dep, spec in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            if dep not in services:
                problems.append(f"{where}: depends_on unknown service {dep!r}")
            if spec.get("condition", "service_started") not in _DEPENDS_CONDITIONS:
                problems.append(f"{where}: depends_on {dep}: unknown condition {spec.get('condition')!r}")
            if spec.get("condition") == "service_healthy" and "healthcheck" not in services.get(dep, {}):
                problems.append(f"{where}: waits for {dep} to be healthy but {dep} has no healthcheck")
        for volume in svc.get("volumes") or []:
            source = (volume.split(":")[0] if isinstance(volume, str) else volume.get("source", ""))
            if source.startswith((".", "/")):
                if not (base / source).resolve().exists():
                    problems.append(f"{where}: bind-mount source {source} does not exist")
            elif source not in named_volumes:
                problems.append(f"{where}: volume {source!r} is not declared under volumes:")
        mode = svc.get("network_mode", "")
        if mode.startswith("service:") and mode.split(":", 1)[1] not in services:
            problems.append(f"{where}: network_mode {mode} names no service")
        if mode and "ports" in svc:
            problems.append(f"{where}: ports with network_mode {mode} (publish them on {mode})")
        health = svc.get("healthcheck")
        if health:
            problems += [f"{where}: healthcheck key {k!r} unknown" for k in health if k not in _HEALTHCHECK_KEYS]
            test = health.get("test")
            if not (isinstance(test, list) and test and test[0] in ("CMD", "CMD-SHELL", "NONE")):
                problems.append(f"{where}: healthcheck test must be a list starting with CMD, CMD-SHELL or NONE")
        for key in ("environment",):
            if isinstance(svc.get(key), dict):
                problems += [f"{where}: {key} {k}: value {v!r} is not a string or number"
                             for k, v in svc[key].items() if not isinstance(v, (str, int, float, type(None)))]
    return problems


def load_compose(path: Path = COMPOSE_FILE) -> dict:
    """The compose file with YAML merge keys resolved (as compose resolves them)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def mutated(doc: dict, path: list, value: object) -> dict:
    """A deep copy of ``doc`` with ``value`` set at ``path`` (keys and list indexes)."""
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out
