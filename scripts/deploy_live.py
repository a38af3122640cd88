#!/usr/bin/env python3
"""Runs the heal workloads of k8s/ as local processes against a real PostgreSQL server and a
Kafka-protocol broker, exactly as the manifests start them.

Run by scripts/validate-deploy.sh after deploy_consistency.py (same venv: PyYAML, otherwise the
standard library; needs the `psql` client). Parameters (environment):

  HEAL_TEST_DATABASE_URL  a PostgreSQL URL with the right to create databases and roles
                          (e.g. postgresql://postgres@127.0.0.1:5432/postgres)
  HEAL_TEST_KAFKA         a Kafka-protocol broker (e.g. tansu on 127.0.0.1:19092)
  CI                      when "true", a missing HEAL_TEST_* variable fails instead of skipping

What it does, with each heal container's args and environment resolved by deploy_consistency
(the image's ENV, envFrom, env with ConfigMap/Secret values and downward-API fields):

  1. creates a fresh database heal_deploy_<pid> on the server, owned by the manifests'
     DATABASE_USER (the role is created with the Secret's DATABASE_PASSWORD if missing, as the
     PostgreSQL StatefulSet initialises it; dropped again if this script created it);
  2. runs the migration Job's container (`heal migrate`);
  3. checks that the roles this build does not implement refuse to start ("not implemented");
  4. starts every pod of the implemented roles as its own process, in an empty working
     directory, on the manifest's containerPort (which must be free). Pods of one StatefulSet
     share that port on this host, so they run one after another: pod N+1 starts after pod N
     has stopped;
  5. waits for the readiness probe (200, "ready": true), asks the liveness and startup probes,
     and scrapes the metrics at the pod's prometheus.io/port and prometheus.io/path: every metric
     docs/observability.md lists for the role must appear (the metric's name says its role,
     heal_<role>_…; others, like heal_up, are exported by every role), and none of another role's;
     activity makes the counters appear: the generator role's events, one small scenario
     published with `heal generate` (malformed events to quarantine, an injected job_failure),
     two batch runs asked over the batch role's API, check cycles asked of the quality role until
     the malformed events and the failed run have opened conditions, and one valid and one
     invalid OpenLineage event posted to the lineage role (POST /api/v1/lineage), whose graph
     must then answer;
  6. stops each process with SIGTERM and expects exit status 0 within 15 s, then checks it wrote
     nothing in its working directory (the pods' root filesystem is read-only).

Only two environment values are replaced: DATABASE_URL (host, port and database name; the
user and password still come from the manifests) and KAFKA_BOOTSTRAP_SERVERS. One is removed:
NEO4J_URI of the lineage role, which would keep its graph in that Neo4j server and refuses to
start without it; there is none here, so the graph lives in PostgreSQL (its default backend).
Everything else stays as in the manifests, including NEO4J_URI of the other roles, which read it
into their configuration but never connect to Neo4j.

Exit status 0 when everything passed or when skipped, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in scripts/
sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy_consistency import (  # noqa: E402
    NOT_IMPLEMENTED,
    ROLES,
    Cluster,
    Heal,
    Problems,
    container_env,
    documented_metrics,
    heal_role_of,
    image_env,
    load_yaml_docs,
    pod_instances,
    resolve_port,
)

READY_TIMEOUT = 60.0
METRICS_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
HEAL_IMAGE = "heal"
DB_PREFIX = "heal_deploy_"
ROLE_COMMENT = "created by scripts/deploy_live.py, pid "

# Documented metrics that a healthy run cannot produce: each only counts a failure that this
# test would have to cause by breaking the database or the broker under a running process.
# A name here that the documentation no longer lists is an error (the list must not go stale).
CANNOT_APPEAR = {
    "heal_ingest_batch_errors_total": "counts batches whose commit failed (database down or refusing "
    "the transaction); needs PostgreSQL broken under a running consumer",
    "heal_ingest_offset_gaps_total": "counts offsets the broker skipped (compaction, retention, "
    "transaction markers); a fresh tansu topic has none",
    "heal_ingest_stalled_partitions_total": "counts partitions with records left that delivered "
    "nothing for 10 s; a healthy broker always delivers",
    "heal_aiops_decision_seconds": "records a decision on failure events; an idle deployment receives "
    "none (engine.rs tests and heal eval measure decisions)",
    "heal_aiops_open_incidents": "set after the first batch of failure events; an idle deployment "
    "receives none",
    "heal_aiops_failure_events_per_incident": "set after the first batch of failure events; an idle "
    "deployment receives none",
    "heal_lineage_events_refused_total": "counts stored events the graph cannot take (validation "
    "lets none through that the graph refuses); needs an event put in the log behind the API",
}


class Fatal(Exception):
    """Stops the run (after cleanup)."""


class ScrapeFailed(Exception):
    pass


def log(message: str) -> None:
    print(f"  {message}", flush=True)


def psql(admin_url: str, sql: str, variables: dict[str, str] | None = None) -> str:
    """Runs SQL (through stdin, so :'var' / :"var" interpolation quotes values) as the admin."""
    cmd = ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", admin_url]
    for k, v in (variables or {}).items():
        cmd += ["-v", f"{k}={v}"]
    proc = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise Fatal(f"psql failed: {proc.stderr.strip()}")
    return proc.stdout


# The operator token every role is given (as an operator would put API_TOKENS in heal-secrets);
# changes are posted with it.
API_TOKEN = "deploy-live-operator-" + os.urandom(8).hex()


def http(method: str, url: str, timeout: float = 6.0, body: bytes | None = None) -> tuple[int | None, str]:
    data = body if body is not None else (b"" if method == "POST" else None)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if method != "GET":
        headers["Authorization"] = f"Bearer {API_TOKEN}"
    req = urllib.request.Request(url, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (OSError, urllib.error.URLError) as e:
        return None, str(getattr(e, "reason", e))


def port_free(port: int) -> bool:
    """Whether heal could bind 0.0.0.0:port (it sets SO_REUSEADDR, as here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: a child is killed when this script dies, however it dies.
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)


# ---------------------------------------------------------------------------------------------
# What the manifests run


@dataclass
class Container:
    kind: str
    workload: str
    pod: str
    role: str  # a role, or "migrate"
    args: list[str]
    env: dict[str, str]
    port: int | None = None
    probes: dict[str, tuple[str, int | None]] = field(default_factory=dict)  # name -> (path, port)
    metrics: tuple[str, int | None] = ("/metrics", None)

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.workload}" + (f" pod {self.pod}" if self.kind == "StatefulSet" else "")


def manifest_containers(k8s_dir: Path, dockerfile: Path, problems: Problems) -> list[list[Container]]:
    """Heal containers of k8s/, grouped by workload (a StatefulSet's pods in ordinal order)."""
    files = sorted(k8s_dir.glob("*.yaml")) + sorted(k8s_dir.glob("*.yml"))
    cluster = Cluster(load_yaml_docs(files), "default")
    base_env = image_env(dockerfile)
    groups: list[list[Container]] = []
    for path, wl in cluster.of_kind("Deployment", "StatefulSet", "Job"):
        spec = wl["spec"]
        pod_spec = spec["template"]["spec"]
        annotations = spec["template"].get("metadata", {}).get("annotations") or {}
        for c in pod_spec.get("containers") or []:
            if c.get("image", "").split("@")[0].rsplit(":", 1)[0].rsplit("/", 1)[-1] != HEAL_IMAGE:
                continue
            args = list(c.get("command") or [])[1:] + list(c.get("args") or [])
            role = heal_role_of(args)
            where = f"{path.name} {wl['kind']}/{wl['metadata']['name']}"
            if role is None:
                problems.error(where, f"heal container with unexpected arguments {args}")
                continue
            pods = pod_instances(wl)
            group = []
            for pod in pods:
                env = container_env(cluster, where, cluster.ns(wl), pod, pod_spec, c, base_env, problems)
                ports = [p["containerPort"] for p in c.get("ports") or []]
                item = Container(wl["kind"], wl["metadata"]["name"], pod["name"], role, args, env,
                                 ports[0] if len(ports) == 1 else None)
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    get = (c.get(probe) or {}).get("httpGet")
                    if get:
                        item.probes[probe] = (get.get("path", "/"), resolve_port(get.get("port"), c))
                if annotations.get("prometheus.io/scrape") == "true":
                    port = annotations.get("prometheus.io/port")
                    item.metrics = (annotations.get("prometheus.io/path", "/metrics"),
                                    int(port) if port else item.port)
                else:
                    item.metrics = ("/metrics", item.port)
                group.append(item)
            groups.append(group)
    return groups


# ---------------------------------------------------------------------------------------------
# The database


class TestDatabase:
    """A fresh database (and, if missing, the manifests' database role) on the admin's server."""

    def __init__(self, admin_url: str, manifest_url: str, env: dict[str, str]) -> None:
        self.admin_url = admin_url
        self.name = f"{DB_PREFIX}{os.getpid()}"
        self.created_db = False
        self.created_role: str | None = None
        self.role_note = ""
        admin = urllib.parse.urlsplit(admin_url)
        jdbc = manifest_url.startswith("jdbc:")
        manifest = urllib.parse.urlsplit(manifest_url.removeprefix("jdbc:"))
        userinfo = manifest.netloc.rpartition("@")[0] if "@" in manifest.netloc else ""
        self.user = urllib.parse.unquote(userinfo.partition(":")[0]) if userinfo else env.get("DATABASE_USER")
        self.password = (urllib.parse.unquote(userinfo.partition(":")[2]) if userinfo
                         else env.get("DATABASE_PASSWORD"))
        if not self.user:
            # Nothing names a user: connect as the admin's user.
            userinfo = admin.netloc.rpartition("@")[0] if "@" in admin.netloc else ""
        hostport = admin.netloc.rpartition("@")[2]
        netloc = f"{userinfo}@{hostport}" if userinfo else hostport
        url = urllib.parse.urlunsplit(
            (manifest.scheme, netloc, f"/{self.name}", manifest.query or admin.query, "")
        )
        self.url = ("jdbc:" if jdbc else "") + url

    def clean_leftovers(self) -> list[str]:
        """Databases of earlier runs whose process is gone (an interrupted run)."""
        dropped = []
        rows = psql(self.admin_url, f"SELECT datname FROM pg_database WHERE datname LIKE '{DB_PREFIX}%'")
        for db in rows.split():
            pid = db.removeprefix(DB_PREFIX)
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                psql(self.admin_url, 'DROP DATABASE IF EXISTS :"db" WITH (FORCE);\n', {"db": db})
                dropped.append(db)
        return dropped

    def create(self) -> None:
        if self.user:
            row = psql(
                self.admin_url,
                "SELECT coalesce(shobj_description(oid, 'pg_authid'), '') FROM pg_roles WHERE rolname = :'r';\n",
                {"r": self.user},
            )
            comment = row.strip()
            if not row:
                sql = ["CREATE ROLE :\"r\" LOGIN"]
                variables = {"r": self.user, "c": f"{ROLE_COMMENT}{os.getpid()}"}
                if self.password:
                    sql.append(" PASSWORD :'p'")
                    variables["p"] = self.password
                psql(self.admin_url, "".join(sql) + ";\nCOMMENT ON ROLE :\"r\" IS :'c';\n", variables)
                self.created_role = self.user
                self.role_note = "role created for this run"
            elif comment.startswith(ROLE_COMMENT):
                # Left behind by an interrupted run: adopt it, so it is dropped at the end.
                pid = comment.removeprefix(ROLE_COMMENT)
                if not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
                    psql(self.admin_url, "COMMENT ON ROLE :\"r\" IS :'c';\n",
                         {"r": self.user, "c": f"{ROLE_COMMENT}{os.getpid()}"})
                    self.created_role = self.user
                    self.role_note = "role left by an interrupted run, dropped at the end"
            else:
                self.role_note = "existing role, left as it is"
        owner = ' OWNER :"r"' if self.user else ""
        psql(self.admin_url, f'CREATE DATABASE :"db"{owner};\n', {"db": self.name, "r": self.user or ""})
        self.created_db = True

    def drop(self) -> list[str]:
        """Drops what create() made; returns problems (never raises)."""
        problems = []
        try:
            if self.created_db:
                psql(self.admin_url, 'DROP DATABASE IF EXISTS :"db" WITH (FORCE);\n', {"db": self.name})
                left = psql(self.admin_url, "SELECT 1 FROM pg_database WHERE datname = :'db';\n",
                            {"db": self.name})
                if left.strip():
                    problems.append(f"database {self.name} still exists")
        except Fatal as e:
            problems.append(f"dropping database {self.name}: {e}")
        try:
            if self.created_role:
                psql(self.admin_url, 'DROP ROLE IF EXISTS :"r";\n', {"r": self.created_role})
        except Fatal as e:
            problems.append(f"dropping role {self.created_role}: {e}")
        return problems


# ---------------------------------------------------------------------------------------------
# Processes


class Proc:
    def __init__(self, c: Container, binary: str, root: Path) -> None:
        self.c = c
        self.cwd = root / "work" / c.pod
        self.cwd.mkdir(parents=True)
        self.log_path = root / "logs" / f"{c.pod}.log"
        self.log_path.parent.mkdir(exist_ok=True)
        self.log = open(self.log_path, "wb")
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            [binary, *c.args], env=c.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
        )
        self.ready_after: float | None = None
        self.stop_result = ""

    def tail(self, n: int = 12) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()[-n:]
        return "\n".join(f"      | {line}" for line in lines)

    def listening_ports(self) -> list[int]:
        ports = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if "listening" in line:
                m = re.search(r'"?addr"?\s*[:=]\s*"?[^"\s]*:(\d+)', line)
                if m:
                    ports.append(int(m.group(1)))
        return ports

    def url(self, path: str, port: int | None) -> str:
        return f"http://127.0.0.1:{port if port is not None else self.c.port}{path}"

    def stop(self) -> tuple[bool, str]:
        if self.popen.poll() is not None:
            return False, f"had already exited with status {self.popen.returncode}"
        asked = time.monotonic()
        self.popen.send_signal(signal.SIGTERM)
        try:
            rc = self.popen.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            return False, f"still running {STOP_TIMEOUT:.0f} s after SIGTERM (killed)"
        took = time.monotonic() - asked
        if rc != 0:
            return False, f"exited with status {rc} after SIGTERM"
        return True, f"SIGTERM -> exit 0 in {took:.1f}s"

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        self.log.close()


def wait_ready(procs: list[Proc], problems: Problems) -> list[Proc]:
    """Polls each process's readiness probe until 200 with "ready": true; returns those ready."""
    pending = list(procs)
    ready = []
    while pending:
        for p in list(pending):
            c = p.c
            elapsed = time.monotonic() - p.started
            path, port = c.probes.get("readinessProbe", ("/readyz", c.port))
            if p.popen.poll() is not None:
                problems.error(c.label, f"exited with status {p.popen.returncode} before it was ready:\n{p.tail()}")
                pending.remove(p)
                continue
            wrong = [x for x in p.listening_ports() if x != c.port]
            if wrong:
                problems.error(c.label, f"heal listens on port {wrong[0]}, the manifest's containerPort is "
                               f"{c.port}")
                pending.remove(p)
                continue
            status, body = http("GET", p.url(path, port))
            ok = False
            if status == 200:
                try:
                    ok = json.loads(body).get("ready") is True
                except ValueError:
                    ok = False
            if ok:
                p.ready_after = elapsed
                try:
                    roles = json.loads(body).get("roles")
                except ValueError:
                    roles = None
                if roles != [c.role]:
                    problems.error(c.label, f"{path} reports roles {roles}, expected [{c.role!r}]")
                checks = {("/healthz", c.port): "/healthz"}
                for probe in ("livenessProbe", "startupProbe"):
                    if probe in c.probes:
                        checks.setdefault(c.probes[probe], probe)
                for (ppath, pport), what in checks.items():
                    s, b = http("GET", p.url(ppath, pport))
                    if s != 200:
                        problems.error(c.label, f"{what} ({ppath} on port {pport}) answers {s}: {b[:200]}")
                pending.remove(p)
                ready.append(p)
            elif elapsed > READY_TIMEOUT:
                problems.error(c.label, f"{path} on port {port} not ready after {READY_TIMEOUT:.0f} s "
                               f"(last answer: {status} {body[:300]}):\n{p.tail()}")
                pending.remove(p)
        if pending:
            time.sleep(0.3)
    return ready


def metric_names(text: str) -> tuple[set[str], set[str]]:
    """(names with a # TYPE line, names of samples) of a Prometheus text exposition."""
    typed, samples = set(), set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 3:
                typed.add(parts[2])
        elif line and not line.startswith("#"):
            m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
            if m:
                samples.add(m.group(0))
    return typed, samples


def role_of_metric(name: str) -> str | None:
    """The role whose processes export a metric (heal_<role>_…), None for every role."""
    for role in ROLES:
        if name.startswith(f"heal_{role}_"):
            return role
    return None


def missing_metrics(p: Proc, documented: dict[str, tuple[str, set[str]]]) -> tuple[list[str], list[str], str]:
    """(expected but absent, present but another role's, the scrape) for one process; raises
    ScrapeFailed when the scrape itself fails (waiting would not help)."""
    path, port = p.c.metrics
    status, body = http("GET", p.url(path, port))
    if status != 200:
        raise ScrapeFailed(f"scraping {path} on port {port} (prometheus.io/path and prometheus.io/port) "
                           f"failed: {status or ''} {body[:200]}".replace("  ", " "))
    typed, samples = metric_names(body)

    def present(name: str) -> bool:
        return name in typed or any(s in samples for s in (name, f"{name}_sum", f"{name}_count", f"{name}_bucket"))

    missing = []
    for name in documented:
        if role_of_metric(name) in (None, p.c.role) and name not in CANNOT_APPEAR and not present(name):
            missing.append(name)
    if not re.search(rf'^heal_up\{{[^}}]*role="{re.escape(p.c.role)}"[^}}]*\}} 1(\.0)?$', body, re.M):
        missing.append(f'heal_up{{role="{p.c.role}"}} 1')
    foreign = sorted(n for n in typed | samples if (r := role_of_metric(n)) is not None and r != p.c.role)
    return missing, foreign, body


def wait_metrics(procs: list[Proc], documented, problems: Problems, deadline: float) -> dict[str, int]:
    """Waits until each process exports its role's metrics; returns how many each showed."""
    found: dict[str, int] = {}
    pending = list(procs)
    while pending:
        for p in list(pending):
            try:
                missing, foreign, body = missing_metrics(p, documented)
            except ScrapeFailed as e:
                problems.error(p.c.label, str(e))
                pending.remove(p)
                continue
            if foreign:
                problems.error(p.c.label, f"exports another role's metrics: {', '.join(foreign)}")
            typed, samples = metric_names(body)
            found[p.c.pod] = len({n for n in documented if n in typed or n in samples or f"{n}_count" in samples})
            if not missing:
                pending.remove(p)
            elif time.monotonic() > deadline or p.popen.poll() is not None:
                state = "" if p.popen.poll() is None else f" (exited with status {p.popen.returncode})"
                problems.error(p.c.label, f"/metrics lacks {', '.join(missing)}{state}")
                pending.remove(p)
        if pending:
            time.sleep(0.5)
    return found


def run_once(c: Container, binary: str, root: Path, extra: list[str] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess:
    cwd = root / "work" / f"{c.pod}-once-{len(list((root / 'work').glob('*')))}"
    cwd.mkdir(parents=True)
    return subprocess.run([binary, *(extra if extra is not None else c.args)], env=c.env, cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=_die_with_parent)


def last_line(proc: subprocess.CompletedProcess) -> str:
    lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
    return lines[-1] if lines else ""


SCENARIO = """\
# Written by scripts/deploy_live.py: activity for the deployment test.
name = "deploy-live"
seed = 11
start = "{start}"
days = 1
events_per_day = 400

[[fault]]
kind = "malformed_json"
target = "product_view"
start = "PT0S"
duration = "P1D"
rate = 0.2

[[fault]]
kind = "job_failure"
target = "{failing_job}"
start = "PT0S"
duration = "P1D"
params = {{ value = "injected by the deployment test" }}
"""
FAILING_JOB = "user_retention"
SUCCEEDING_JOB = "stg_orders"
# Posted to the lineage role: an OpenLineage run event of a job outside the platform, and the
# same with a broken run id and time, which must be refused.
LINEAGE_EVENT = {
    "eventType": "COMPLETE",
    "eventTime": "{time}",
    "producer": "https://example.com/deploy-live",
    "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    "run": {"runId": "0191c1d2-3b4a-7c5d-8e6f-7a8b9c0d1e2f"},
    "job": {"namespace": "deploy-live", "name": "export_revenue"},
    "inputs": [{"namespace": "deploy-live", "name": "revenue_snapshot"}],
    "outputs": [{"namespace": "s3://deploy-live", "name": "reports/revenue.csv"}],
}


# ---------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, admin_url: str, kafka: str, problems: Problems) -> None:
    t0 = time.monotonic()
    groups = manifest_containers(args.k8s_dir, args.dockerfile, problems)
    if problems.errors:
        raise Fatal("the manifests do not resolve")
    documented = documented_metrics(args.doc)
    if not documented:
        raise Fatal(f"no metrics table in {args.doc}")
    for name in CANNOT_APPEAR:
        if name not in documented:
            problems.error("deploy_live.py", f"CANNOT_APPEAR lists {name}, which {args.doc} does not document")
    migrate = [g[0] for g in groups if g[0].role == "migrate"]
    roles = [g for g in groups if g[0].role != "migrate"]
    if len(migrate) != 1:
        raise Fatal(f"expected one migration Job, found {len(migrate)}")

    # The replacements: the database and the broker; nothing else.
    db = TestDatabase(admin_url, migrate[0].env.get("DATABASE_URL", "postgresql://localhost/heal"), migrate[0].env)
    replaced: dict[str, tuple[str, str]] = {}
    for group in groups:
        for c in group:
            tokens = f'[{{name="deploy-live", token="{API_TOKEN}", scopes=["operator"]}}]'
            for key, value in (("DATABASE_URL", db.url), ("KAFKA_BOOTSTRAP_SERVERS", kafka),
                               ("HEAL_AUTH__TOKENS", tokens)):
                replaced.setdefault(key, (c.env.get(key, "(unset: API_TOKENS of heal-secrets)"),
                                          "a test operator token" if key == "HEAL_AUTH__TOKENS" else value))
                c.env[key] = value
    # The lineage role would keep its graph in the manifests' Neo4j and not start without it.
    removed = set()
    for group in groups:
        for c in group:
            if c.role == "lineage" and "NEO4J_URI" in c.env:
                removed.add(f"NEO4J_URI={c.env.pop('NEO4J_URI')}")
    kept = sorted({f"{k}={v}" for g in groups for c in g for k, v in c.env.items()
                   if k not in replaced and re.match(r"^[a-z][a-z0-9+.-]*://", v)
                   and not k.startswith("KUBERNETES_")})
    redact = (lambda u: re.sub(r"://([^:@/]*):[^@/]*@", r"://\1:***@", u))
    for key, (old, new) in replaced.items():
        log(f"replaced {key}: {redact(old)} -> {redact(new)}")
    if removed:
        log(f"removed from the lineage role: {', '.join(sorted(removed))} (no Neo4j here: its graph "
            "lives in PostgreSQL)")
    if kept:
        log(f"left as in the manifests: {', '.join(kept)} (read into the configuration, never contacted)")

    root = Path(tempfile.mkdtemp(prefix="heal-deploy-live-"))
    procs: list[Proc] = []
    heal_check = Heal(args.heal_bin)
    crashed = False
    try:
        # Ports first: nothing is created if the test cannot run.
        implemented, refusing = [], []
        for group in roles:
            ok, _, message = heal_check.check(group[0].role, group[0].env)
            if ok:
                implemented.append(group)
            elif NOT_IMPLEMENTED in message:
                refusing.append(group)
            else:
                problems.error(group[0].label, f"--check-config fails: {message}")
        for group in implemented:
            c = group[0]
            if c.port is None:
                problems.error(c.label, "no single containerPort")
            elif not port_free(c.port):
                raise Fatal(f"port {c.port} ({c.label}'s containerPort) is in use by another process; "
                            "the test runs heal on the manifests' ports, free it and run again")
        if problems.errors:
            return

        dropped = db.clean_leftovers()
        if dropped:
            log(f"dropped databases of interrupted runs: {', '.join(dropped)}")
        db.create()
        log(f"database {db.name} (owner {db.user or 'the admin user'}"
            f"{', ' + db.role_note if db.role_note else ''}), broker {kafka}")

        # 1. The migration Job.
        t = time.monotonic()
        done = run_once(migrate[0], args.heal_bin, root)
        if done.returncode != 0:
            raise Fatal(f"{migrate[0].label}: `heal {' '.join(migrate[0].args)}` exited "
                        f"{done.returncode}: {last_line(done)}")
        log(f"{migrate[0].label}: heal {' '.join(migrate[0].args)} -> exit 0 in {time.monotonic() - t:.1f}s")

        # 2. Roles this build does not implement refuse to start.
        for group in refusing:
            c = group[0]
            done = run_once(c, args.heal_bin, root, timeout=30)
            if done.returncode == 0 or NOT_IMPLEMENTED not in (done.stderr + done.stdout):
                problems.error(c.label, f"expected a refusal (\"{NOT_IMPLEMENTED}\"), got exit "
                               f"{done.returncode}: {last_line(done)}")
            else:
                log(f"{c.label}: refuses to start as expected (exit {done.returncode}: {last_line(done)})")

        # 3. The first pod of every implemented workload, side by side.
        for group in implemented:
            procs.append(Proc(group[0], args.heal_bin, root))
        ready = wait_ready(procs, problems)
        if len(ready) != len(procs):
            return
        for p in ready:
            log(f"{p.c.label}: ready after {p.ready_after:.1f}s on port {p.c.port}")

        # 4. Activity: a small scenario (quarantined events, an injected batch failure) and two
        #    batch runs over the API; the generator role's events flow meanwhile.
        yesterday = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).date()
        scenario = root / "deploy-live.toml"
        scenario.write_text(SCENARIO.format(start=f"{yesterday}T00:00:00Z", failing_job=FAILING_JOB))
        done = run_once(migrate[0], args.heal_bin, root,
                        extra=["generate", "--scenario", str(scenario), "--output", "json"], timeout=120)
        if done.returncode != 0:
            problems.error("heal generate", f"exit {done.returncode}: {last_line(done)}")
        else:
            try:
                # heal generate writes its report to stderr (stdout is kept for `--out -`), after
                # any log lines.
                text = done.stdout if done.stdout.strip() else done.stderr
                out = json.loads(text[text.index("{") if text.startswith("{") else text.index("\n{") + 1:])
                faults = ", ".join(f"{f['kind']} ({f['affected_count']} events)" if f["affected_count"]
                                   else f"{f['kind']} on {f['target']}" for f in out.get("faults", []))
                log(f"heal generate (activity, {migrate[0].label}'s environment): {out.get('events')} events "
                    f"for {yesterday}; faults: {faults}")
            except (ValueError, KeyError, TypeError):
                log("heal generate (activity): exit 0")
        batch = next((p for p in procs if p.c.role == "batch"), None)
        if batch is not None:
            for job in (SUCCEEDING_JOB, FAILING_JOB):
                path = f"/api/batch/jobs/{job}/run?date={yesterday}"
                status, body = http("POST", batch.url(path, None), timeout=60)
                if status != 200:
                    problems.error(batch.c.label, f"POST {path} answered {status}: {body[:300]}")
                    continue
                try:
                    runs = [f"{r['job']} {r['day']} {'succeeded' if r['succeeded'] else 'failed'} after "
                            f"{r['attempts']} attempt(s)" for r in json.loads(body).get("runs", [])]
                except (ValueError, KeyError, TypeError, AttributeError):
                    runs = []
                log(f"{batch.c.label}: POST {path} -> {'; '.join(runs) or body[:200]}")
        quality = next((p for p in procs if p.c.role == "quality"), None)
        if quality is not None:
            # The scenario's malformed events and the failed batch run must open conditions:
            # run cycles until they have (the ingest role may still be catching up).
            deadline = time.monotonic() + 45
            opened: list = []
            while True:
                status, body = http("POST", quality.url("/api/quality/run", None), timeout=60)
                if status != 200:
                    problems.error(quality.c.label, f"POST /api/quality/run answered {status}: {body[:300]}")
                    break
                status, body = http("GET", quality.url("/api/quality/conditions?state=open", None), timeout=30)
                try:
                    opened = sorted({c["check_name"] for c in json.loads(body)}) if status == 200 else []
                except (ValueError, KeyError, TypeError):
                    opened = []
                if {"pipeline_health", "raw_events_schema", "product_views_schema"} & set(opened) \
                        or time.monotonic() > deadline:
                    break
                time.sleep(3)
            if opened:
                log(f"{quality.c.label}: POST /api/quality/run; open conditions on {', '.join(opened)}")
            else:
                problems.error(quality.c.label, "no quality condition opened for the scenario's malformed "
                               "events and failed job run")
            status, body = http("GET", quality.url("/api/quality/results?limit=lots", None), timeout=30)
            if status != 400 or "limit" not in body:
                problems.error(quality.c.label, f"GET /api/quality/results?limit=lots answered {status}, "
                               f"expected 400 naming limit: {body[:200]}")
        lineage = next((p for p in procs if p.c.role == "lineage"), None)
        if lineage is not None:
            event = json.loads(json.dumps(LINEAGE_EVENT).replace("{time}", f"{yesterday}T12:00:00Z"))
            bad = json.loads(json.dumps(event))
            bad["run"]["runId"], bad["eventTime"] = "not-a-uuid", "noon"
            for what, body, want in (("valid", event, 201), ("invalid", bad, 400)):
                status, answer = http("POST", lineage.url("/api/v1/lineage", None), timeout=30,
                                      body=json.dumps(body).encode())
                if status != want:
                    problems.error(lineage.c.label, f"POST /api/v1/lineage ({what} event) answered {status}, "
                                   f"expected {want}: {answer[:300]}")
                else:
                    log(f"{lineage.c.label}: POST /api/v1/lineage ({what} event) -> {status}")
            path = "/api/lineage/affected/revenue_snapshot"
            status, answer = http("GET", lineage.url(path, None), timeout=30)
            if status != 200 or "reports/revenue.csv" not in answer:
                problems.error(lineage.c.label, f"GET {path} answered {status} without the posted job's "
                               f"output: {answer[:300]}")
            else:
                log(f"{lineage.c.label}: GET {path} -> 200, includes the posted job's output")
        found = wait_metrics(procs, documented, problems, time.monotonic() + METRICS_TIMEOUT)

        # 5. Further pods of a StatefulSet, one after another on the same port.
        waves = max(len(g) for g in implemented)
        for n in range(1, waves):
            for group in implemented:
                if n >= len(group):
                    continue
                prev = next(p for p in procs if p.c is group[n - 1])
                ok, prev.stop_result = prev.stop()
                if not ok:
                    problems.error(prev.c.label, prev.stop_result)
                t = time.monotonic()
                while not port_free(group[n].port) and time.monotonic() - t < 5:
                    time.sleep(0.1)
                p = Proc(group[n], args.heal_bin, root)
                procs.append(p)
                if wait_ready([p], problems):
                    log(f"{p.c.label}: ready after {p.ready_after:.1f}s on port {p.c.port} "
                        f"(after {prev.c.pod} stopped)")
                    found.update(wait_metrics([p], documented, problems, time.monotonic() + METRICS_TIMEOUT))

        # 6. SIGTERM, exit 0.
        for p in procs:
            if not p.stop_result:
                ok, p.stop_result = p.stop()
                if not ok:
                    problems.error(p.c.label, f"{p.stop_result}:\n{p.tail()}")
        for p in procs:
            written = sorted(str(x.relative_to(p.cwd)) for x in p.cwd.rglob("*"))
            if written:
                problems.error(p.c.label, f"wrote into its working directory (read-only in the pod): {written[:5]}")
            expected = len([n for n in documented if role_of_metric(n) in (None, p.c.role)])
            excluded = len([n for n in CANNOT_APPEAR if role_of_metric(n) in (None, p.c.role)])
            log(f"{p.c.label}: metrics {found.get(p.c.pod, 0)}/{expected}"
                f"{f' ({excluded} excluded)' if excluded else ''}, {p.stop_result}")
    except BaseException:
        crashed = True
        raise
    finally:
        # Clean up whatever happens; a second Ctrl-C must not cut this short.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for p in procs:
            p.kill()
        heal_check.workdir.cleanup()
        for problem in db.drop():
            problems.error("cleanup", problem)
        if (problems.errors or crashed) and procs or args.keep_logs:
            log(f"logs kept in {root}/logs")
        else:
            shutil.rmtree(root, ignore_errors=True)
        dropped = f"database {db.name} dropped; " if db.created_db else ""
        log(f"{dropped}{len(procs)} heal process(es) stopped; {time.monotonic() - t0:.1f}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heal-bin", required=True)
    parser.add_argument("--dockerfile", type=Path, required=True)
    parser.add_argument("--k8s-dir", type=Path, required=True)
    parser.add_argument("--doc", type=Path, required=True, help="docs/observability.md")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs even on success")
    args = parser.parse_args()
    admin_url = os.environ.get("HEAL_TEST_DATABASE_URL", "")
    kafka = os.environ.get("HEAL_TEST_KAFKA", "")
    if not admin_url or not kafka:
        unset = [k for k, v in (("HEAL_TEST_DATABASE_URL", admin_url), ("HEAL_TEST_KAFKA", kafka)) if not v]
        if os.environ.get("CI") == "true":
            print(f"FAIL live: {' and '.join(unset)} unset; in CI this test must run (scripts/test.sh "
                  "starts PostgreSQL and tansu and sets both)", file=sys.stderr)
            return 1
        print(f"live: skipped ({' and '.join(unset)} unset; scripts/test.sh sets both)")
        return 0
    if not os.access(args.heal_bin, os.X_OK):
        print(f"heal binary not found or not executable: {args.heal_bin}", file=sys.stderr)
        return 1
    if shutil.which("psql") is None:
        print("FAIL live: the psql client is needed (apt-get install postgresql-client)", file=sys.stderr)
        return 1

    def interrupted(signum, _frame):
        raise Fatal(f"interrupted by signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, interrupted)
    problems = Problems()
    try:
        run(args, admin_url, kafka, problems)
    except Fatal as e:
        problems.error("live", str(e))
    for error in problems.errors:
        print(f"FAIL {error}", file=sys.stderr)
    if problems.errors:
        print(f"{len(problems.errors)} problem(s)", file=sys.stderr)
        return 1
    print("live: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
