#!/usr/bin/env bash
# Validates the deployment files without a cluster or a Docker daemon:
#   - Dockerfile: hadolint
#   - every YAML file: yamllint (.yamllint)
#   - docker-compose.yml: the Compose specification's JSON schema (check-jsonschema's vendored
#     copy, no network)
#   - k8s/*.yaml: kubernetes-validate --strict (unknown fields fail) against pinned Kubernetes
#     versions
#   - helm/heal: Helm's own lint and template engine (helm-python-sdk, Helm's Go SDK in a wheel;
#     there is no helm binary), rendered with the default values and with the infrastructure
#     disabled (external services, an existing Secret, group assignment); the output is
#     yamllinted and validated like k8s/; values the chart must refuse are checked to fail
#   - consistency with the binary (scripts/deploy_consistency.py): every role has a workload in
#     Compose, k8s/ and each Helm rendering; each heal container's resolved environment passes
#     `heal run --roles <role> --check-config`; ports, Services and probes match the port the
#     binary reports; the metrics documentation and dashboard match the sources
#   - the k8s/ workloads live (scripts/deploy_live.py): the migration Job, then every implemented
#     role as its own process with its container's args and resolved environment, against the
#     PostgreSQL server and Kafka broker of HEAL_TEST_DATABASE_URL / HEAL_TEST_KAFKA (only
#     DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS are pointed at them): readiness, liveness, the
#     documented metrics on each role's scrape port, a clean exit on SIGTERM; the unimplemented
#     roles must refuse to start. Needs ports 8081-8083 free.
#
# The tools live in a venv under ${HEAL_CACHE:-~/.cache/heal}/venv, pinned by
# deploy/requirements-validate.txt (rebuilt when that file changes).
# Parameters (environment):
#   HEAL_BIN           the heal binary (default: $CARGO_TARGET_DIR/debug/heal, with
#                      CARGO_TARGET_DIR defaulting to $HEAL_CACHE/target as in scripts/test.sh).
#                      Pass it to this script only: a heal process that inherits HEAL_BIN reads
#                      it as a setting and refuses to start.
#   HEAL_CACHE         cache directory (default ~/.cache/heal)
#   PYTHON             interpreter for the venv (default python3)
#   HEAL_TEST_DATABASE_URL, HEAL_TEST_KAFKA
#                      PostgreSQL admin URL and broker for the live check (scripts/test.sh sets
#                      both); unset, the live check is skipped, or fails when CI=true
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

CACHE="${HEAL_CACHE:-$HOME/.cache/heal}"
TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
HEAL_BIN_PATH="${HEAL_BIN:-$TARGET_DIR/debug/heal}"
VENV="$CACHE/venv"
REQUIREMENTS="$ROOT/deploy/requirements-validate.txt"
PYTHON="${PYTHON:-python3}"
# Kubernetes versions the manifests are validated against: the oldest they support (the
# ingest StatefulSet needs the pod-index label, 1.28) and the newest kubernetes-validate knows.
K8S_VERSIONS=(1.28.0 1.37.0)

START=$(date +%s)
step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'validate-deploy: %s\n' "$*" >&2; exit 1; }

# ---- the venv ----------------------------------------------------------------------------------
stamp="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements-sha256" 2>/dev/null)" != "$stamp" ]; then
  step "creating the tool venv in $VENV"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    # Debian's python3 needs python3-venv for ensurepip.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$VENV"
      "$PYTHON" -m venv "$VENV"
    else
      fail "cannot create a venv with $PYTHON (install python3-venv)"
    fi
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --only-binary=:all: -r "$REQUIREMENTS"
  echo "$stamp" >"$VENV/.requirements-sha256"
fi
BIN="$VENV/bin"
export PATH="$BIN:$PATH"
TOOLS_READY=$(date +%s)

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# kubernetes-validate only warns (and exits 0) for a kind it has no schema for: treat any
# warning as a failure.
kube_validate() {
  local version out status=0
  for version in "${K8S_VERSIONS[@]}"; do
    out="$("$BIN/kubernetes-validate" --kubernetes-version "$version" --strict --quiet "$@" 2>&1)" || status=1
    if [ -n "$out" ]; then
      printf '%s\n' "$out"
      status=1
    fi
    [ "$status" = 0 ] || fail "kubernetes-validate (Kubernetes $version) failed"
    echo "  Kubernetes $version: $# file(s) valid (strict)"
  done
}

# ---- Dockerfile --------------------------------------------------------------------------------
step "hadolint Dockerfile"
"$BIN/hadolint" --config .hadolint.yaml Dockerfile
echo "  OK"

# ---- YAML --------------------------------------------------------------------------------------
step "yamllint"
"$BIN/yamllint" --config-file .yamllint docker-compose.yml k8s helm/heal .yamllint .hadolint.yaml
echo "  OK"

# ---- Compose -----------------------------------------------------------------------------------
step "docker-compose.yml against the Compose specification schema"
"$BIN/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml

# ---- Kubernetes manifests ----------------------------------------------------------------------
step "k8s/ with kubernetes-validate --strict"
kube_validate k8s/*.yaml

# ---- Helm chart --------------------------------------------------------------------------------
step "helm/heal: lint and render (Helm's engine via helm-python-sdk)"
RENDER=("$BIN/python" scripts/helm_render.py)
"${RENDER[@]}" lint helm/heal
"${RENDER[@]}" render helm/heal --out "$WORK/helm/default" --name heal --namespace heal
EXTERNAL='{
  "postgresql": {"enabled": false}, "kafka": {"enabled": false}, "neo4j": {"enabled": false},
  "external": {"database": {"url": "postgresql://db.example.internal:5432/heal", "user": "heal_app"},
               "kafka": {"bootstrapServers": "broker-1:9092,broker-2:9092"},
               "neo4j": {"uri": "bolt://graph.example.internal:7687"}},
  "secrets": {"existingSecret": "heal-credentials"},
  "roles": {"ingest": {"kafkaAssignment": "group", "replicas": 3}},
  "config": {"extraEnv": {"HEAL_INGEST__BATCH_SIZE": 2000}}
}'
"${RENDER[@]}" render helm/heal --out "$WORK/helm/external" --name prod --namespace analytics \
  --values-json "$EXTERNAL"
"${RENDER[@]}" lint helm/heal --values-json "$EXTERNAL"
"${RENDER[@]}" expect-failure helm/heal --values-json '{"postgresql": {"enabled": false}}' \
  --message "external.database.url is required"
"${RENDER[@]}" expect-failure helm/heal --values-json '{"kafka": {"enabled": false}}' \
  --message "external.kafka.bootstrapServers is required"
"${RENDER[@]}" expect-failure helm/heal --values-json '{"image": {"tag": "latest"}}' \
  --message "not latest"
step "rendered chart: yamllint and kubernetes-validate --strict"
# Helm's toYaml writes sequences without indentation; everything else as in .yamllint.
"$BIN/yamllint" --config-data \
  "{extends: $ROOT/.yamllint, rules: {indentation: {spaces: 2, indent-sequences: whatever}}}" \
  "$WORK/helm"
mapfile -t RENDERED < <(find "$WORK/helm" -name '*.yaml' | sort)
kube_validate "${RENDERED[@]}"

# ---- consistency with the binary ---------------------------------------------------------------
step "consistency with the heal binary ($HEAL_BIN_PATH)"
[ -x "$HEAL_BIN_PATH" ] || fail "no heal binary at $HEAL_BIN_PATH (build it: cargo build -p heal, or set HEAL_BIN)"
"$BIN/python" scripts/deploy_consistency.py workloads --heal-bin "$HEAL_BIN_PATH" \
  --dockerfile Dockerfile --compose docker-compose.yml --k8s-dir k8s \
  --helm-output "$WORK/helm/default" --helm-output "$WORK/helm/external" --helm-namespace heal

step "metrics: docs/observability.md and deploy/grafana/heal.json against the sources"
"$BIN/python" scripts/deploy_consistency.py metrics --crates crates --doc docs/observability.md \
  --dashboard deploy/grafana/heal.json

step "k8s/ workloads as processes against PostgreSQL and Kafka"
"$BIN/python" scripts/deploy_live.py --heal-bin "$HEAL_BIN_PATH" --dockerfile Dockerfile \
  --k8s-dir k8s --doc docs/observability.md

END=$(date +%s)
printf '\nvalidate-deploy: all checks passed in %ss (tools %ss)\n' "$((END - START))" "$((TOOLS_READY - START))"
