#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh machine:
#   - a virtualenv with the pinned requirements
#   - PostgreSQL (started if it is not running) as the test database
#   - a real kube-apiserver + etcd (built once into /opt/optionsportal-kube)
#   - Chromium for the browser tests
#   - lint, Django checks, migrations check, then pytest on PostgreSQL and on SQLite
# Extra arguments go to both pytest runs, e.g. scripts/test.sh -k sync
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "[test] $*"; }

# --- Python -------------------------------------------------------------
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  python3 -m venv .venv
fi
if ! cmp -s requirements-dev.txt .venv/.installed-dev 2>/dev/null || ! cmp -s requirements.txt .venv/.installed 2>/dev/null; then
  log "installing requirements"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements-dev.txt
  cp requirements-dev.txt .venv/.installed-dev
  cp requirements.txt .venv/.installed
fi

# --- System packages ----------------------------------------------------
need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v psql >/dev/null || need_apt+=(postgresql postgresql-client)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# --- PostgreSQL ---------------------------------------------------------
PGHOST_ADDR="${PGHOST_ADDR:-127.0.0.1}"
if ! pg_isready -q -h "$PGHOST_ADDR" -p 5432; then
  log "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  else
    service postgresql start
  fi
  for _ in $(seq 1 60); do pg_isready -q -h "$PGHOST_ADDR" -p 5432 && break; sleep 0.5; done
  pg_isready -h "$PGHOST_ADDR" -p 5432
fi
export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@$PGHOST_ADDR:5432/optionsportal}"
psql "${DATABASE_URL%/*}/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname='optionsportal'" | grep -q 1 \
  || psql "${DATABASE_URL%/*}/postgres" -qc "CREATE DATABASE optionsportal"

# --- Kubernetes ---------------------------------------------------------
scripts/test-kube.sh install

# --- JupyterHub's proxy (hub end-to-end tests) ---------------------------
CHP_VERSION=5.3.0
if [[ "$(.hubtest/node_modules/.bin/configurable-http-proxy --version 2>/dev/null)" != "$CHP_VERSION" ]]; then
  if ! command -v npm >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  log "installing configurable-http-proxy $CHP_VERSION into .hubtest/"
  npm install --prefix .hubtest --no-audit --no-fund --loglevel=error "configurable-http-proxy@$CHP_VERSION"
fi

# --- Checks and tests ---------------------------------------------------
export DEBUG=true SECRET_KEY=test-only-secret-key
export OPTIONSPORTAL_REQUIRE_SERVICES=true
log "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
log "mypy"
.venv/bin/mypy
log "django checks"
.venv/bin/python manage.py check
.venv/bin/python manage.py makemigrations --check --dry-run
DEBUG=false SECRET_KEY="$(openssl rand -hex 32)" ALLOWED_HOSTS=portal.example.org \
  OPTIONS_PORTAL_HUB_TOKEN=x .venv/bin/python manage.py check --deploy --fail-level WARNING
mkdir -p artifacts
# The whole suite on PostgreSQL, then on SQLite (the quick start's database) everything that does
# not need PostgreSQL itself or a browser/hub: the API, form, import, admin, and the sync against the
# real apiserver. Tests marked `postgresql` are left out there (tests/conftest.py). Both runs always
# run; the script fails if either does. TEST_DATABASES=postgresql (or sqlite) runs only one.
failed=()
for database in ${TEST_DATABASES:-postgresql sqlite}; do
  case "$database" in
    postgresql)
      log "pytest on PostgreSQL"
      .venv/bin/python -m pytest "$@" || failed+=(postgresql)
      ;;
    sqlite)
      log "pytest on SQLite"
      sqlite_dir="$(mktemp -d)"
      DATABASE_URL="sqlite:///$sqlite_dir/optionsportal.sqlite3" \
        .venv/bin/python -m pytest -m "not browser and not e2e" "$@" || failed+=(sqlite)
      rm -rf "$sqlite_dir"
      ;;
    *) log "unknown database in TEST_DATABASES: $database"; exit 2 ;;
  esac
done
if ((${#failed[@]})); then
  log "pytest failed on: ${failed[*]}"
  exit 1
fi
