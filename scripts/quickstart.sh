#!/usr/bin/env bash
# Set up and run the portal on this machine: demo data, an admin login, gunicorn
# on http://127.0.0.1:8000 (PORT). Safe to run again: it keeps the database and
# prints a fresh admin password each time.
#
#   scripts/quickstart.sh            no cluster: the demo's namespaces, HDFS, Gaffer
#                                    graph, service accounts and volume are stand-in
#                                    rows marked as demo data; /prespawn answers dry
#                                    runs ("dry_run": true) with the manifests it
#                                    would apply
#   scripts/quickstart.sh --cluster  a real kube-apiserver + etcd (the test suite's,
#                                    built once into /opt/optionsportal-kube: about
#                                    ten minutes the first time, needs root for apt),
#                                    seeded with the demo as real objects, and the
#                                    sync loop beside gunicorn: /prespawn creates
#                                    objects and /poststop removes them
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=false
case "${1:-}" in
  "") ;;
  --cluster) CLUSTER=true ;;
  *) echo "usage: $0 [--cluster]" >&2; exit 2 ;;
esac

log() { echo "[quickstart] $*"; }

if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  python3 -m venv .venv
fi
if ! cmp -s requirements.txt .venv/.installed 2>/dev/null; then
  log "installing requirements"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.txt
  cp requirements.txt .venv/.installed
fi

mkdir -p .quickstart
[[ -s .quickstart/secret_key ]] || openssl rand -hex 32 > .quickstart/secret_key
[[ -s .quickstart/hub_token ]] || openssl rand -hex 24 > .quickstart/hub_token

# A local demo: DEBUG on (so http and the dev static files work).
export DEBUG=true
export SECRET_KEY_FILE="$PWD/.quickstart/secret_key"
export OPTIONS_PORTAL_HUB_TOKEN_FILE="$PWD/.quickstart/hub_token"
unset SECRET_KEY OPTIONS_PORTAL_HUB_TOKEN
PORT="${PORT:-8000}"
manage() { .venv/bin/python manage.py "$@"; }

pids=()
KUBE_DIR=""
stop_all() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ -z "$KUBE_DIR" ]] || scripts/test-kube.sh stop "$KUBE_DIR"
}

if $CLUSTER; then
  # Its own database: the stand-in rows of the plain demo have no place beside a real cluster.
  export DATABASE_URL="${DATABASE_URL:-sqlite:///$PWD/.quickstart/cluster.sqlite3}"
  scripts/test-kube.sh install
  KUBE_DIR="${QUICKSTART_KUBE_DIR:-$PWD/.quickstart/kube}"
  # A cluster left running by an earlier run that was killed would hold etcd's data directory.
  scripts/test-kube.sh stop "$KUBE_DIR"
  trap stop_all EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  scripts/test-kube.sh start "$KUBE_DIR"
  export KUBECONFIG="$KUBE_DIR/kubeconfig"
  manage migrate --noinput -v 0
  manage seed_demo_cluster
  manage sync_cluster --once
  manage load_demo --cluster
else
  export DATABASE_URL="${DATABASE_URL:-sqlite:///$PWD/db.sqlite3}"
  unset KUBECONFIG
  manage migrate --noinput -v 0
  manage load_demo
fi

ADMIN_PASSWORD="$(openssl rand -base64 12 | tr -d '/+=')"
ADMIN_PASSWORD="$ADMIN_PASSWORD" manage shell --no-imports -c "
import os
from django.contrib.auth import get_user_model
User = get_user_model()
user, _ = User.objects.get_or_create(username='admin', defaults={'email': 'admin@example.org'})
user.is_staff = user.is_superuser = True
user.set_password(os.environ['ADMIN_PASSWORD'])
user.save()
"

BASE="http://127.0.0.1:$PORT"
TOKEN="$(cat .quickstart/hub_token)"
if $CLUSTER; then
  MODE="with a real apiserver ($(awk '/server:/{print $2; exit}' "$KUBECONFIG")); the sync runs beside the web"
  DRY=""
else
  MODE="with no cluster: the discovered kinds are demo rows; spawn with \"dry_run\": true"
  DRY=', "dry_run": true'
fi
cat <<MSG

  Options Portal is starting on $BASE
    $MODE
    admin:      $BASE/admin/   (spawn form preview: $BASE/admin/preview/?username=alice)
    login:      admin / $ADMIN_PASSWORD
    hub token:  $TOKEN   (Authorization: token ...)
    health:     $BASE/healthz  $BASE/readyz
    API schema: $BASE/api/schema/

  Try the hub API as JupyterHub would call it:
    curl -s -H "Authorization: token $TOKEN" -H 'Content-Type: application/json' \\
      -d '{"username": "alice", "server_name": "", "default_namespace": "user-alice"}' $BASE/options
    curl -s -H "Authorization: token $TOKEN" -H 'Content-Type: application/json' \\
      -d '{"username": "alice", "server_name": "", "pod_name": "jupyter-alice", "default_namespace": "user-alice",
           "profile": "gaffer-pyspark", "user_options": {"k8s_namespace": ["user-alice"], "hdfs": ["default:demo-hdfs"],
           "gaffer_graph": ["default:demo-graph"], "k8s_service_account": [""]}$DRY}' $BASE/prespawn
    curl -s -H "Authorization: token $TOKEN" -H 'Content-Type: application/json' \\
      -d '{"username": "alice", "server_name": ""}' $BASE/poststop
  Stop with Ctrl-C.

MSG

export BIND="127.0.0.1:$PORT"
if $CLUSTER; then
  manage sync_cluster &
  pids+=($!)
  .venv/bin/gunicorn optionsportal.wsgi:application --config gunicorn.conf.py &
  pids+=($!)
  # Either one ending ends the quick start (and the trap stops the rest).
  wait -n "${pids[@]}"
else
  exec .venv/bin/gunicorn optionsportal.wsgi:application --config gunicorn.conf.py
fi
