#!/usr/bin/env bash
# Set up and run the portal on this machine: SQLite, demo data, an admin login,
# gunicorn on http://127.0.0.1:8000. Safe to run again: it keeps the database
# and prints a fresh admin password each time.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/python ]]; then
  echo "[quickstart] creating .venv"
  python3 -m venv .venv
fi
if ! cmp -s requirements.txt .venv/.installed 2>/dev/null; then
  echo "[quickstart] installing requirements"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.txt
  cp requirements.txt .venv/.installed
fi

mkdir -p .quickstart
[[ -s .quickstart/secret_key ]] || openssl rand -hex 32 > .quickstart/secret_key
[[ -s .quickstart/hub_token ]] || openssl rand -hex 24 > .quickstart/hub_token

# A local demo: DEBUG on (so http and the dev static files work), SQLite.
export DEBUG=true
export SECRET_KEY_FILE="$PWD/.quickstart/secret_key"
export OPTIONS_PORTAL_HUB_TOKEN_FILE="$PWD/.quickstart/hub_token"
export DATABASE_URL="${DATABASE_URL:-sqlite:///$PWD/db.sqlite3}"
PORT="${PORT:-8000}"

.venv/bin/python manage.py migrate --noinput -v 0
.venv/bin/python manage.py load_demo
ADMIN_PASSWORD="$(openssl rand -base64 12 | tr -d '/+=')"
.venv/bin/python manage.py shell --no-imports -c "
from django.contrib.auth import get_user_model
User = get_user_model()
user, _ = User.objects.get_or_create(username='admin', defaults={'email': 'admin@example.org'})
user.is_staff = user.is_superuser = True
user.set_password('$ADMIN_PASSWORD')
user.save()
"

cat <<MSG

  Options Portal is starting on http://127.0.0.1:$PORT
    admin:      http://127.0.0.1:$PORT/admin/
    login:      admin / $ADMIN_PASSWORD
    hub token:  $(cat .quickstart/hub_token)   (Authorization: token ...)
    health:     http://127.0.0.1:$PORT/healthz  http://127.0.0.1:$PORT/readyz
  Stop with Ctrl-C.

MSG
BIND="127.0.0.1:$PORT" exec .venv/bin/gunicorn optionsportal.wsgi:application --config gunicorn.conf.py
