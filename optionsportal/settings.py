"""Settings for Options Portal, read from the environment.

Every secret may also be given as ``NAME_FILE`` pointing at a file, which is
how Kubernetes Secrets are usually mounted.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dj_database_url

from optionsportal.env import envbool, envfloat, envint, envlist, envsecret, require_real_secret
from optionsportal.logs import install_record_factory

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = envbool("DEBUG", False)

SECRET_KEY = envsecret("SECRET_KEY")
if not DEBUG:
    require_real_secret("SECRET_KEY", SECRET_KEY)
elif not SECRET_KEY:
    SECRET_KEY = "insecure-development-key-only-for-debug"  # noqa: S105 - only ever used with DEBUG on

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "inventory",
    "spawning",
    # After inventory: its admin wraps the inventory's admin classes with the history view.
    "simple_history",
    "audit",
    "dashboard",
]

MIDDLEWARE = [
    "optionsportal.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "optionsportal.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "optionsportal.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        envsecret("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(envsecret("STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Production hardening; behind an ingress that terminates TLS set
# SECURE_PROXY_SSL_HEADER via SECURE_PROXY_SSL=true.
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^options$", r"^prespawn$", r"^poststop$"]
if envbool("SECURE_PROXY_SSL", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if DEBUG else 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# History (audit app): reasons hold import_config's path, which may be long; past versions are
# shown, never restored (a discovered row's history leaves out the observed columns).
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True
SIMPLE_HISTORY_REVERT_DISABLED = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["spawning.auth.HubTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["spawning.auth.IsHub"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "spawning.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "spawning.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Options Portal hub API",
    "DESCRIPTION": "What JupyterHub calls to draw the spawn form and provision a notebook.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# The shared secret JupyterHub sends as "Authorization: token <secret>".
OPTIONS_PORTAL_HUB_TOKEN = envsecret("OPTIONS_PORTAL_HUB_TOKEN")
# Lets a hub that still runs the original token-less config call us, for a
# migration period only.
OPTIONS_PORTAL_ALLOW_ANONYMOUS_HUB = envbool("OPTIONS_PORTAL_ALLOW_ANONYMOUS_HUB", False)
# Every process (web, sync, migrate) checks it, so a deployment that forgot its
# Secret fails at once and says so instead of serving with a published token.
if not DEBUG and (OPTIONS_PORTAL_HUB_TOKEN or not OPTIONS_PORTAL_ALLOW_ANONYMOUS_HUB):
    require_real_secret("OPTIONS_PORTAL_HUB_TOKEN", OPTIONS_PORTAL_HUB_TOKEN)

# Kubernetes: KUBECONFIG (file) or, when unset, the in-cluster service account.
KUBECONFIG = envsecret("KUBECONFIG")
KUBE_REQUEST_TIMEOUT = envfloat("KUBE_REQUEST_TIMEOUT", 10.0)
# The name server-side apply records as the owner of what /prespawn creates.
KUBE_FIELD_MANAGER = envsecret("KUBE_FIELD_MANAGER") or "options-portal"

# /options: each worker keeps the replies it sent, gzipped, keyed by everything a reply is
# drawn from (spawning/reply_cache.py); this bounds the memory they take, per worker
# (about 13.5 KB a reply at bench/portal_bench.py's inventory: some 600 users' forms).
OPTIONS_REPLY_CACHE_BYTES = envint("OPTIONS_REPLY_CACHE_BYTES", 8 * 1024 * 1024)
# After an inventory change, /options draws the form from the previous snapshot while a
# background thread builds the new one (about 0.1-0.2 s for a mid-sized inventory), rather
# than making that request wait. /prespawn always validates against the current inventory.
OPTIONS_PREVIOUS_WHILE_REBUILDING = envbool("OPTIONS_PREVIOUS_WHILE_REBUILDING", True)

SYNC_INTERVAL = envfloat("SYNC_INTERVAL", 300.0)
# /readyz?sync=1 (the sync worker's probe) fails when the last completed round is older than this.
SYNC_MAX_AGE_SECONDS = envint("SYNC_MAX_AGE_SECONDS", 900)
# How long a notebook may be gone before the sweep deletes what we made for it.
SWEEP_GRACE_SECONDS = envint("SWEEP_GRACE_SECONDS", 3600)
# Spawn records older than this are deleted by the sync's writer (0 keeps them for ever).
SPAWN_RECORD_RETENTION_DAYS = envint("SPAWN_RECORD_RETENTION_DAYS", 180)

LOG_LEVEL = (envsecret("LOG_LEVEL") or "INFO").upper()
# JSON lines for log collectors; plain text for a person at a terminal.
LOG_FORMAT = (envsecret("LOG_FORMAT") or ("plain" if DEBUG else "json")).lower()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "optionsportal.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json" if LOG_FORMAT == "json" else "plain"}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "kubernetes": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}

install_record_factory()

if OPTIONS_PORTAL_ALLOW_ANONYMOUS_HUB:
    logging.getLogger("optionsportal").warning(
        "OPTIONS_PORTAL_ALLOW_ANONYMOUS_HUB is on: /options and /prespawn accept calls without a token"
    )
