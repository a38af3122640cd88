#!/usr/bin/env python3
"""Consistency checks of the deployment files against the heal binary itself.

Run by scripts/validate-deploy.sh (inside its venv: needs PyYAML, otherwise the standard
library only). Subcommands:

  workloads  Every role has a workload in docker-compose.yml, k8s/ and each rendered Helm
             output; each heal container's configuration, resolved exactly as the container
             would see it (the image's ENV, then envFrom, then env with ConfigMap/Secret values
             and downward-API fields filled in, and service-link variables when those are on),
             passes `heal run --roles <role> --check-config`; the listening port the binary
             reports is the containerPort, the Service's targetPort and the probes' port; probe
             paths are /healthz and /readyz; images carry a fixed tag; StatefulSets have a
             PodDisruptionBudget; static Kafka assignment matches the replica count.
  metrics    docs/observability.md lists exactly the metrics the Rust sources record (names,
             kinds, labels), and the Grafana dashboard only queries recorded metrics.

Exit status 1 with one line per problem when anything is off.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROLES = ["generator", "ingest", "batch", "quality", "lineage", "aiops", "incidents"]
# Roles whose pods need stable identities.
STATEFUL_ROLES = {"ingest", "incidents"}
PROBE_PATHS = {"/healthz", "/readyz"}
NOT_IMPLEMENTED = "not implemented in this build yet"
# Variables the kubelet gives every container of a pod in any namespace.
KUBERNETES_ENV = {
    "KUBERNETES_SERVICE_HOST": "10.96.0.1",
    "KUBERNETES_SERVICE_PORT": "443",
    "KUBERNETES_SERVICE_PORT_HTTPS": "443",
    "KUBERNETES_PORT": "tcp://10.96.0.1:443",
    "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
    "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
    "KUBERNETES_PORT_443_TCP_PORT": "443",
    "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
}


class Problems:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.notes: list[str] = []

    def error(self, where: str, message: str) -> None:
        if f"{where}: {message}" not in self.errors:
            self.errors.append(f"{where}: {message}")

    def note(self, message: str) -> None:
        self.notes.append(message)


# ---------------------------------------------------------------------------------------------
# The heal binary


class Heal:
    """Runs `heal run --check-config` in an empty directory (so no heal.toml is read) with
    exactly the given environment; results are cached per (roles, environment)."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.workdir = tempfile.TemporaryDirectory(prefix="heal-deploy-check-")
        self.cwd = self.workdir.name
        self.cache: dict[tuple, tuple[bool, dict | None, str]] = {}
        self.calls = 0

    def check(self, roles: str, env: dict[str, str]) -> tuple[bool, dict | None, str]:
        key = (roles, tuple(sorted(env.items())))
        if key not in self.cache:
            self.calls += 1
            proc = subprocess.run(
                [self.binary, "run", "--roles", roles, "--check-config", "--output", "json"],
                env=env,
                cwd=self.cwd,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if proc.returncode == 0:
                self.cache[key] = (True, json.loads(proc.stdout), "")
            else:
                message = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
                self.cache[key] = (False, None, message[-1] if message else f"exit {proc.returncode}")
        return self.cache[key]

    def role_config(
        self, where: str, role: str, env: dict[str, str], problems: Problems
    ) -> dict | None:
        """The configuration the role would start with, or None after reporting why not.
        A role this build does not implement yet refuses to start; its environment is then
        checked with every role (which only loads and validates the configuration)."""
        ok, report, message = self.check(role, env)
        if ok:
            assert report is not None
            if report.get("mode") != "microservices" or report.get("roles") != [role]:
                problems.error(
                    where,
                    f"heal would run mode={report.get('mode')} roles={report.get('roles')}, "
                    f"not the {role} role alone on its own port",
                )
            return report["config"]
        if NOT_IMPLEMENTED in message:
            problems.note(f"{where}: the {role} role is not implemented in this build (as expected)")
            ok, report, message = self.check("all", env)
            if ok:
                assert report is not None
                return report["config"]
        problems.error(where, f"`heal run --roles {role} --check-config` fails: {message}")
        return None

    def any_config(self, where: str, env: dict[str, str], problems: Problems) -> dict | None:
        ok, report, message = self.check("all", env)
        if not ok:
            problems.error(where, f"the configuration does not load: {message}")
            return None
        assert report is not None
        return report["config"]


# ---------------------------------------------------------------------------------------------
# Helpers


def image_env(dockerfile: Path) -> dict[str, str]:
    """ENV of the Dockerfile's last stage (the runtime image), `ENV K=V [K=V…]` form."""
    stages: list[list[str]] = []
    logical = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        if re.match(r"(?i)^FROM\s", logical):
            stages.append([])
        elif stages:
            stages[-1].append(logical)
        logical = ""
    env: dict[str, str] = {}
    for instruction in stages[-1] if stages else []:
        m = re.match(r"(?i)^ENV\s+(.*)$", instruction)
        if not m:
            continue
        for key, value in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)', m.group(1)):
            env[key] = value.strip('"')
    return env


def image_tag_problem(image: str) -> str | None:
    if "@sha256:" in image:
        return None
    name = image.rsplit("/", 1)[-1]
    if ":" not in name:
        return f"image {image} has no tag (means :latest)"
    if name.endswith(":latest"):
        return f"image {image} uses :latest"
    return None


def heal_role_of(args: list[str]) -> str | None:
    """`run --roles X` → X, `migrate` → 'migrate'."""
    if not args:
        return None
    if args[0] == "migrate":
        return "migrate"
    if args[0] == "run" and "--roles" in args:
        i = args.index("--roles")
        if i + 1 < len(args):
            return args[i + 1]
    return None


def load_yaml_docs(paths: list[Path]) -> list[tuple[Path, dict]]:
    docs = []
    for path in paths:
        with path.open() as f:
            for doc in yaml.safe_load_all(f):
                if isinstance(doc, dict) and doc:
                    docs.append((path, doc))
    return docs


def labels_match(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# ---------------------------------------------------------------------------------------------
# Kubernetes manifests (plain or rendered by Helm)


class Cluster:
    """The objects of one set of manifests, by kind and namespace."""

    def __init__(self, docs: list[tuple[Path, dict]], default_namespace: str) -> None:
        self.docs = docs
        self.default_namespace = default_namespace

    def ns(self, doc: dict) -> str:
        return doc.get("metadata", {}).get("namespace") or self.default_namespace

    def find(self, kind: str, namespace: str, name: str) -> dict | None:
        for _, doc in self.docs:
            if doc.get("kind") == kind and self.ns(doc) == namespace and doc["metadata"]["name"] == name:
                return doc
        return None

    def of_kind(self, *kinds: str) -> list[tuple[Path, dict]]:
        return [(p, d) for p, d in self.docs if d.get("kind") in kinds]

    def data(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        doc = self.find(kind, namespace, name)
        if doc is None:
            return None
        values = {k: str(v) for k, v in (doc.get("data") or {}).items()}
        if kind == "Secret":
            values = {k: base64.b64decode(v).decode() for k, v in values.items()}
            values.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
        return values


def service_link_env(cluster: Cluster, namespace: str) -> dict[str, str]:
    """The variables the kubelet adds for each Service of the namespace when a pod keeps
    enableServiceLinks at its default (true)."""
    env: dict[str, str] = {}
    for n, (_, svc) in enumerate(cluster.of_kind("Service")):
        if cluster.ns(svc) != namespace or svc.get("spec", {}).get("clusterIP") == "None":
            continue
        prefix = svc["metadata"]["name"].upper().replace("-", "_")
        ip = f"10.96.1.{n + 2}"
        ports = svc.get("spec", {}).get("ports") or []
        if not ports:
            continue
        first = ports[0]
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(first["port"])
        env[f"{prefix}_PORT"] = f"tcp://{ip}:{first['port']}"
        for port in ports:
            proto = port.get("protocol", "TCP")
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
            base = f"{prefix}_PORT_{port['port']}_{proto}"
            env[base] = f"{proto.lower()}://{ip}:{port['port']}"
            env[f"{base}_PROTO"] = proto.lower()
            env[f"{base}_PORT"] = str(port["port"])
            env[f"{base}_ADDR"] = ip
    return env


def expand_refs(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in env values ($$ escapes)."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, value)


def container_env(
    cluster: Cluster,
    where: str,
    namespace: str,
    pod_meta: dict,
    pod_spec: dict,
    container: dict,
    base_env: dict[str, str],
    problems: Problems,
) -> dict[str, str]:
    env = dict(base_env)
    env.update(KUBERNETES_ENV)
    env["HOSTNAME"] = pod_meta["name"]
    if pod_spec.get("enableServiceLinks", True) is not False:
        env.update(service_link_env(cluster, namespace))
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, ref_key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if ref_key not in source:
                continue
            ref = source[ref_key]
            values = cluster.data(kind, namespace, ref["name"])
            if values is None:
                if not ref.get("optional"):
                    problems.error(where, f"envFrom {kind} {ref['name']} is not among the manifests")
                continue
            env.update({prefix + k: v for k, v in values.items()})
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = expand_refs(str(item["value"]), env)
            continue
        source = item.get("valueFrom") or {}
        if "configMapKeyRef" in source or "secretKeyRef" in source:
            kind = "ConfigMap" if "configMapKeyRef" in source else "Secret"
            ref = source.get("configMapKeyRef") or source.get("secretKeyRef")
            values = cluster.data(kind, namespace, ref["name"])
            if values is None:
                if kind == "Secret":
                    # An existing Secret outside these manifests (e.g. Helm's existingSecret).
                    env[name] = "placeholder-from-existing-secret"
                    continue
                problems.error(where, f"{name}: ConfigMap {ref['name']} is not among the manifests")
                continue
            if ref["key"] not in values:
                if not ref.get("optional"):
                    problems.error(where, f"{name}: {kind} {ref['name']} has no key {ref['key']}")
                continue
            env[name] = values[ref["key"]]
        elif "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            m = re.fullmatch(r"metadata\.labels\['([^']+)'\]", path)
            if path == "metadata.name":
                env[name] = pod_meta["name"]
            elif path == "metadata.namespace":
                env[name] = namespace
            elif m:
                labels = pod_meta.get("labels", {})
                if m.group(1) not in labels:
                    problems.error(where, f"{name}: the pod has no label {m.group(1)}")
                    continue
                env[name] = labels[m.group(1)]
            elif path in ("status.podIP", "status.hostIP"):
                env[name] = "10.244.0.10"
            else:
                env[name] = f"field-{path}"
        elif "resourceFieldRef" in source:
            env[name] = "1"
        else:
            problems.error(where, f"{name}: unsupported valueFrom {sorted(source)}")
    return env


def pod_instances(workload: dict) -> list[dict]:
    """Metadata of the pods a workload makes (at least one, so a scaled-to-zero workload is
    still checked): StatefulSet pods get their ordinal name and the pod-index label."""
    kind = workload["kind"]
    name = workload["metadata"]["name"]
    template_labels = dict(workload["spec"]["template"].get("metadata", {}).get("labels") or {})
    replicas = workload["spec"].get("replicas", 1)
    if kind == "StatefulSet":
        pods = []
        for i in range(max(replicas, 1)):
            labels = dict(template_labels)
            labels["apps.kubernetes.io/pod-index"] = str(i)
            labels["statefulset.kubernetes.io/pod-name"] = f"{name}-{i}"
            pods.append({"name": f"{name}-{i}", "labels": labels})
        return pods
    return [{"name": f"{name}-7d9f8c6b5d-x2k4q", "labels": template_labels}]


def resolve_port(port, container: dict) -> int | None:
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    try:
        return int(port)
    except (TypeError, ValueError):
        return None


def check_resources(where: str, container: dict, problems: Problems) -> None:
    resources = container.get("resources") or {}
    for part in ("requests", "limits"):
        for res in ("cpu", "memory"):
            if res not in (resources.get(part) or {}):
                problems.error(where, f"container {container['name']} has no resources.{part}.{res}")


def check_cluster(
    label: str,
    cluster: Cluster,
    heal: Heal,
    base_env: dict[str, str],
    heal_repo: str,
    problems: Problems,
) -> None:
    found: dict[str, str] = {}
    migrate_found = False
    workloads = cluster.of_kind("Deployment", "StatefulSet", "Job", "DaemonSet", "CronJob")
    for path, wl in workloads:
        kind = wl["kind"]
        name = wl["metadata"]["name"]
        namespace = cluster.ns(wl)
        where = f"{label} {path.name} {kind}/{name}"
        spec = wl["spec"]
        if kind == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        pod_spec = spec["template"]["spec"]
        containers = list(pod_spec.get("containers") or []) + list(pod_spec.get("initContainers") or [])
        for c in containers:
            problem = image_tag_problem(c.get("image", ""))
            if problem:
                problems.error(where, problem)
            check_resources(where, c, problems)
        if kind == "StatefulSet":
            headless = cluster.find("Service", namespace, spec.get("serviceName", ""))
            if headless is None or headless["spec"].get("clusterIP") != "None":
                problems.error(where, f"serviceName {spec.get('serviceName')} is not a headless Service here")
            pod_labels = spec["template"]["metadata"].get("labels") or {}
            if not any(
                cluster.ns(pdb) == namespace
                and labels_match(pdb["spec"].get("selector", {}).get("matchLabels") or {}, pod_labels)
                for _, pdb in cluster.of_kind("PodDisruptionBudget")
            ):
                problems.error(where, "no PodDisruptionBudget selects this StatefulSet's pods")
        for c in pod_spec.get("containers") or []:
            if c.get("image", "").split("@")[0].rsplit(":", 1)[0].rsplit("/", 1)[-1] != heal_repo:
                continue
            # `command` replaces the image's ENTRYPOINT (heal itself), `args` its CMD.
            args = list(c.get("command") or [])[1:] + list(c.get("args") or [])
            role = heal_role_of(args)
            cwhere = f"{where} container {c['name']}"
            if role is None:
                problems.error(cwhere, f"heal container with unexpected arguments {args}")
                continue
            if pod_spec.get("enableServiceLinks", True) is not False:
                problems.error(
                    cwhere,
                    "enableServiceLinks must be false: the kubelet would add <SERVICE>_PORT-style "
                    "variables, and any Service whose name starts with heal- turns into HEAL_* "
                    "variables the binary rejects",
                )
            if role == "migrate":
                migrate_found = True
                for pod in pod_instances({**wl, "spec": {**spec, "replicas": 1}, "kind": "Job"}):
                    env = container_env(cluster, cwhere, namespace, pod, pod_spec, c, base_env, problems)
                    heal.any_config(cwhere, env, problems)
                continue
            if role not in ROLES:
                problems.error(cwhere, f"unknown role {role}")
                continue
            if role in found:
                problems.error(cwhere, f"a second workload for the {role} role (first: {found[role]})")
            found[role] = f"{kind}/{name}"
            want_kind = "StatefulSet" if role in STATEFUL_ROLES else "Deployment"
            if kind != want_kind:
                problems.error(cwhere, f"the {role} role should be a {want_kind}, not a {kind}")
            pods = pod_instances(wl)
            port = None
            for pod in pods:
                env = container_env(cluster, cwhere, namespace, pod, pod_spec, c, base_env, problems)
                config = heal.role_config(f"{cwhere} (pod {pod['name']})", role, env, problems)
                if config is None:
                    continue
                port = config["ports"][role]
                kafka = config["kafka"]
                if role == "ingest" and kafka["assignment"] == "static":
                    if kafka["replicas"] != spec.get("replicas", 1):
                        problems.error(
                            cwhere,
                            f"kafka.replicas = {kafka['replicas']} but the StatefulSet has "
                            f"{spec.get('replicas', 1)} replicas",
                        )
                    if kind == "StatefulSet" and kafka["replica_index"] != int(
                        pod["labels"]["apps.kubernetes.io/pod-index"]
                    ):
                        problems.error(
                            cwhere,
                            f"pod {pod['name']} gets kafka.replica_index = {kafka['replica_index']}, "
                            "not its ordinal",
                        )
            if port is None:
                continue
            container_ports = [p["containerPort"] for p in c.get("ports") or []]
            if container_ports != [port]:
                problems.error(cwhere, f"containerPorts {container_ports}, but heal listens on {port} only")
            for probe_name, want in (
                ("readinessProbe", "/readyz"),
                ("livenessProbe", "/healthz"),
                ("startupProbe", None),
            ):
                probe = c.get(probe_name)
                if probe is None:
                    if want:
                        problems.error(cwhere, f"no {probe_name}")
                    continue
                http = probe.get("httpGet")
                if http is None:
                    problems.error(cwhere, f"{probe_name} is not an HTTP probe")
                    continue
                if http.get("path") not in PROBE_PATHS or (want and http.get("path") != want):
                    problems.error(
                        cwhere, f"{probe_name} path {http.get('path')}; expected {want or sorted(PROBE_PATHS)}"
                    )
                target = resolve_port(http.get("port"), c)
                if target != port:
                    problems.error(
                        cwhere, f"{probe_name} asks port {http.get('port')} (= {target}), heal listens on {port}"
                    )
            pod_labels = spec["template"]["metadata"].get("labels") or {}
            services = [
                svc
                for _, svc in cluster.of_kind("Service")
                if cluster.ns(svc) == namespace and labels_match(svc["spec"].get("selector") or {}, pod_labels)
            ]
            if not services:
                problems.error(cwhere, "no Service selects this role's pods")
            for svc in services:
                for sp in svc["spec"].get("ports") or []:
                    target = resolve_port(sp.get("targetPort", sp["port"]), c)
                    if target != port:
                        problems.error(
                            cwhere,
                            f"Service {svc['metadata']['name']} port {sp['port']} targets "
                            f"{sp.get('targetPort')} (= {target}), not heal's port {port}",
                        )
    for role in ROLES:
        if role not in found:
            problems.error(label, f"no workload runs the {role} role")
    if not migrate_found:
        problems.error(label, "no migration Job (`heal migrate`)")
    kinds = sorted({d.get("kind", "?") for _, d in cluster.docs})
    problems.note(f"{label}: {len(cluster.docs)} objects ({', '.join(kinds)}); roles: "
                  + ", ".join(f"{r}={found.get(r, '-')}" for r in ROLES))


# ---------------------------------------------------------------------------------------------
# docker-compose.yml


def interpolate(value, variables: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, $VAR and $$ with the given
    variables (the defaults apply to anything unset)."""
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, default = m.group(2), m.group(3)
        current = variables.get(name)
        if op == ":-" and not current:
            return default
        if op == "-" and current is None:
            return default
        if op in ("?", ":?") and not current:
            raise ValueError(f"${{{name}}} is required: {default}")
        return current or ""

    pattern = r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|-|:\?|\?)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)"
    return re.sub(pattern, sub, value)


def compose_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            k, _, v = str(item).partition("=")
            out[k] = v
        return out
    return {k: ("" if v is None else str(v).lower() if isinstance(v, bool) else str(v)) for k, v in env.items()}


def check_compose(path: Path, heal: Heal, base_env: dict[str, str], heal_repo: str, problems: Problems) -> None:
    label = path.name
    compose = interpolate(yaml.safe_load(path.read_text()), {})
    services = compose.get("services") or {}
    found: dict[str, str] = {}
    migrate = None
    for name, svc in services.items():
        where = f"{label} service {name}"
        image = svc.get("image", "")
        if image:
            problem = image_tag_problem(image)
            if problem:
                problems.error(where, problem)
        elif "build" not in svc:
            problems.error(where, "no image")
        if image.split(":")[0].rsplit("/", 1)[-1] != heal_repo:
            continue
        command = svc.get("command")
        if isinstance(command, str):
            command = command.split()
        role = heal_role_of(list(command or ["run"]))
        env = dict(base_env)
        env.update(compose_env(svc))
        if role == "migrate":
            migrate = name
            heal.any_config(where, env, problems)
            if svc.get("restart", "no") != "no":
                problems.error(where, "a one-shot migration must not restart")
            continue
        if role not in ROLES:
            problems.error(where, f"heal service with unexpected command {command}")
            continue
        if role in found:
            problems.error(where, f"a second service for the {role} role (first: {found[role]})")
        found[role] = name
        config = heal.role_config(where, role, env, problems)
        implemented = heal.check(role, env)[0]
        profiles = svc.get("profiles") or []
        if implemented and profiles:
            problems.error(where, f"an implemented role should start by default, not only in profiles {profiles}")
        if not implemented and "future" not in profiles:
            problems.error(where, "a role that is not implemented yet belongs in the `future` profile")
        depends = svc.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        want = {"postgres": "service_healthy", "kafka": "service_healthy"}
        if migrate_name := next(
            (n for n, s in services.items() if heal_role_of(list(s.get("command") or [])) == "migrate"), None
        ):
            want[migrate_name] = "service_completed_successfully"
        for dep, condition in want.items():
            if (depends.get(dep) or {}).get("condition") != condition:
                problems.error(where, f"depends_on {dep} should have condition {condition}")
        if config is None:
            continue
        port = config["ports"][role]
        container_ports = []
        for p in svc.get("ports") or []:
            if isinstance(p, dict):
                container_ports.append(int(p["target"]))
            else:
                container_ports.append(int(str(p).split("/")[0].rsplit(":", 1)[-1]))
        if container_ports != [port]:
            problems.error(where, f"publishes container ports {container_ports}, but heal listens on {port}")
        test = (svc.get("healthcheck") or {}).get("test")
        text = " ".join(test) if isinstance(test, list) else str(test or "")
        urls = re.findall(r"http://(?:127\.0\.0\.1|localhost):(\d+)(/[A-Za-z0-9_/-]*)", text)
        if not urls:
            problems.error(where, "no HTTP health check")
        for url_port, url_path in urls:
            if int(url_port) != port:
                problems.error(where, f"health check asks port {url_port}, heal listens on {port}")
            if url_path not in PROBE_PATHS:
                problems.error(where, f"health check path {url_path} is not one of {sorted(PROBE_PATHS)}")
    for role in ROLES:
        if role not in found:
            problems.error(label, f"no service runs the {role} role")
    if migrate is None:
        problems.error(label, "no one-shot migration service (`heal migrate`)")
    problems.note(f"{label}: services " + ", ".join(sorted(services)))


# ---------------------------------------------------------------------------------------------
# Metrics: sources, docs, dashboard

MACRO = re.compile(r"\b(?:metrics::)?(describe_)?(counter|gauge|histogram)!\(")


def macro_calls(text: str):
    for m in MACRO.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        body = text[m.end() : i - 1]
        name = re.match(r'\s*"([a-zA-Z0-9_:]+)"', body)
        if name:
            yield bool(m.group(1)), m.group(2), name.group(1), body


def source_metrics(crates: Path) -> tuple[dict[str, tuple[str, set[str]]], dict[str, str]]:
    recorded: dict[str, tuple[str, set[str]]] = {}
    described: dict[str, str] = {}
    for path in sorted(crates.rglob("*.rs")):
        if "tests" in path.relative_to(crates).parts:
            continue
        for is_describe, kind, name, body in macro_calls(path.read_text()):
            if is_describe:
                described[name] = kind
                continue
            labels = set(re.findall(r'"([a-zA-Z_][a-zA-Z0-9_]*)"\s*=>', body))
            old = recorded.get(name)
            recorded[name] = (kind, labels | (old[1] if old else set()))
    return recorded, described


def documented_metrics(doc: Path) -> dict[str, tuple[str, set[str]]]:
    """The rows of docs/observability.md's metrics table: name -> (kind, label names)."""
    documented: dict[str, tuple[str, set[str]]] = {}
    for line in doc.read_text().splitlines():
        m = re.match(r"\|\s*`(heal_[a-z0-9_]+)`\s*\|\s*(counter|gauge|histogram)\s*\|([^|]*)\|", line)
        if m:
            labels = set(re.findall(r"`([a-z_]+)`", m.group(3)))
            documented[m.group(1)] = (m.group(2), labels)
    return documented


def check_metrics(crates: Path, doc: Path, dashboard: Path, problems: Problems) -> None:
    recorded, described = source_metrics(crates)
    if not recorded:
        problems.error(str(crates), "no metrics::counter!/gauge!/histogram! calls found")
    documented = documented_metrics(doc)
    for name, (kind, labels) in recorded.items():
        if name not in documented:
            problems.error(doc.name, f"metric {name} ({kind}) is recorded in the sources but not documented")
            continue
        dkind, dlabels = documented[name]
        if dkind != kind:
            problems.error(doc.name, f"{name} is documented as a {dkind}, the sources record a {kind}")
        if dlabels != labels:
            problems.error(doc.name, f"{name} documented labels {sorted(dlabels)}, sources {sorted(labels)}")
    for name, (kind, _) in documented.items():
        if name not in recorded and name not in described:
            problems.error(doc.name, f"documented metric {name} does not exist in the sources")
        if name not in recorded and name in described:
            problems.note(f"{name} is declared (describe_{kind}!) but never recorded")
    board = json.loads(dashboard.read_text())
    exprs = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "expr" and isinstance(v, str):
                    exprs.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(board)
    if not exprs:
        problems.error(dashboard.name, "no queries")
    for expr in exprs:
        for name in set(re.findall(r"\bheal_[a-z0-9_]+", expr)):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if name not in recorded and base not in recorded:
                problems.error(dashboard.name, f"query uses {name}, which heal does not record: {expr}")
    problems.note(
        f"metrics: {len(recorded)} recorded, {len(documented)} documented, {len(exprs)} dashboard queries"
    )


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("workloads")
    w.add_argument("--heal-bin", required=True)
    w.add_argument("--dockerfile", type=Path, required=True)
    w.add_argument("--compose", type=Path, required=True)
    w.add_argument("--k8s-dir", type=Path, required=True)
    w.add_argument("--helm-output", type=Path, action="append", default=[],
                   help="a directory of rendered chart manifests (repeatable)")
    w.add_argument("--helm-namespace", default="heal")
    w.add_argument("--heal-image", default="heal", help="repository name of the heal image")
    m = sub.add_parser("metrics")
    m.add_argument("--crates", type=Path, required=True)
    m.add_argument("--doc", type=Path, required=True)
    m.add_argument("--dashboard", type=Path, required=True)
    m.add_argument("--verbose", action="store_true")
    w.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    problems = Problems()
    if args.command == "workloads":
        if not os.access(args.heal_bin, os.X_OK):
            print(f"heal binary not found or not executable: {args.heal_bin}", file=sys.stderr)
            return 1
        heal = Heal(args.heal_bin)
        base_env = image_env(args.dockerfile)
        if not base_env:
            problems.error(args.dockerfile.name, "no ENV found in the runtime stage")
        check_compose(args.compose, heal, base_env, args.heal_image, problems)
        k8s_files = sorted(args.k8s_dir.glob("*.yaml")) + sorted(args.k8s_dir.glob("*.yml"))
        check_cluster("k8s", Cluster(load_yaml_docs(k8s_files), "default"), heal, base_env, args.heal_image,
                      problems)
        for out in args.helm_output:
            files = sorted(out.rglob("*.yaml"))
            check_cluster(f"helm[{out.name}]", Cluster(load_yaml_docs(files), args.helm_namespace), heal,
                          base_env, args.heal_image, problems)
        problems.note(f"heal --check-config runs: {heal.calls}")
        heal.workdir.cleanup()
    else:
        check_metrics(args.crates, args.doc, args.dashboard, problems)
    if args.verbose:
        for note in problems.notes:
            print(f"  note: {note}")
    for error in problems.errors:
        print(f"FAIL {error}", file=sys.stderr)
    if problems.errors:
        print(f"{len(problems.errors)} problem(s)", file=sys.stderr)
        return 1
    print(f"{args.command}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
