"""Autopack settings, read from the environment (see README.md for every variable)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from autopack_site import database, logs
from autopack_site.env import (
    autopack_home,
    envbool,
    envchoice,
    envfloat,
    envint,
    envlist,
    envstr,
    generated_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent

AUTOPACK_HOME = autopack_home(BASE_DIR)
AUTOPACK_HOME.mkdir(parents=True, exist_ok=True)
AUTOPACK_WORKSPACES = AUTOPACK_HOME / "workspaces"

SECRET_KEY = envstr("SECRET_KEY") or generated_secret(AUTOPACK_HOME / "secret_key")
DEBUG = envbool("DEBUG", False)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "channels_postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_q",
    "autopack_site",
    "runs",
    "telemetry",
    "governance",
    "memory",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before anything that could look up a session or token: a NUL byte must not reach
    # the database.
    "autopack_site.middleware.RejectUnstorableText",
    # Before CommonMiddleware, which may answer a missing slash with a redirect first.
    "autopack_site.middleware.ApiNotFoundAsJson",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "autopack_site.urls"
ASGI_APPLICATION = "autopack_site.asgi.application"

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

# Database: DATABASE_URL, or the embedded PostgreSQL under AUTOPACK_HOME.
DATABASE_URL = envstr("DATABASE_URL")
EMBEDDED_PGDATA: Path | None = None
EMBEDDED_DB_STARTED_HERE = False
if DATABASE_URL:
    _default_db = database.from_url(DATABASE_URL)
else:
    EMBEDDED_PGDATA = AUTOPACK_HOME / "pgdata"
    _default_db, EMBEDDED_DB_STARTED_HERE = database.embedded(EMBEDDED_PGDATA)
_default_db["CONN_MAX_AGE"] = envint("DATABASE_CONN_MAX_AGE", 0, minimum=0)
DATABASES = {"default": _default_db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Channel layer: cross-process, so workers reach the browsers connected to web servers.
# PostgreSQL (LISTEN/NOTIFY) on the same database by default, Redis when REDIS_URL is set.
REDIS_URL = envstr("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    # channels_postgres builds a database wrapper from this dict; without TIME_ZONE: None
    # that fails and get_channel_layer() quietly returns None. Its group table is reached
    # through a database alias of its own name: the same database.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_postgres.core.PostgresChannelLayer",
            "CONFIG": {**DATABASES["default"], "TIME_ZONE": None},
        }
    }
    DATABASES["channels_postgres"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Served by WhiteNoise straight from the app and static/ folders: no collectstatic step.
WHITENOISE_USE_FINDERS = True
# Under ASGI Django warns on every file response with a synchronous iterator, which is how
# static files are served; the files are small and read in a thread, so the warning is noise.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous")

REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header is what turns "not logged in" into 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 25,
    "DEFAULT_SCHEMA_CLASS": "autopack_site.api.AutoSchema",
    "EXCEPTION_HANDLER": "autopack_site.api.exception_handler",
    # The schema names path parameters as the URLconf does ({pk}), as errors about them do.
    "SCHEMA_COERCE_PATH_PK": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Autopack API",
    "DESCRIPTION": "Create and follow governed, autonomous builds.",
    "VERSION": "0.1.0",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SERVE_INCLUDE_SCHEMA": False,
    # 3.1: the run config's schema comes from pydantic, in JSON Schema 2020-12 ("null" types).
    "OAS_VERSION": "3.1.0",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "autopack_site.api.nulls_as_in_openapi_3_1",
    ],
    # Choice sets shared by several fields, named once.
    "ENUM_NAME_OVERRIDES": {
        "RunStateEnum": "runs.states.RunState.CHOICES",
        "PhaseStateEnum": "runs.states.PhaseState.CHOICES",
        "AttemptStateEnum": "runs.states.AttemptState.CHOICES",
        "GovernanceRequestStateEnum": "governance.models.GovernanceRequest.State",
        "LevelEnum": "governance.models.GovernanceRequest.Risk",
    },
}

# django-q2 on the ORM broker (the database), or on Redis when REDIS_URL is set. A task
# that outlives `retry` seconds is handed out again while still running (harmless: a step
# is claimed under a lease, so a duplicate does nothing), and `timeout` kills a task.
# Every machine must use the same cluster name (the queue's key) and SECRET_KEY (tasks are
# signed).
AUTOPACK_TASK_TIMEOUT = envint("AUTOPACK_TASK_TIMEOUT", 1800, minimum=10)
Q_CLUSTER = {
    "name": envstr("AUTOPACK_QUEUE") or "autopack",
    "workers": envint("AUTOPACK_WORKERS", 2, minimum=1),
    "timeout": AUTOPACK_TASK_TIMEOUT,
    "retry": AUTOPACK_TASK_TIMEOUT + 60,
    "max_attempts": 1,
    "poll": 0.5,
    "catch_up": False,
    "save_limit": 1000,
    "ack_failures": True,
    **({"redis": REDIS_URL} if REDIS_URL else {"orm": "default"}),
}
# Engine: model routing, gate commands, worker leases, provider calls.
AUTOPACK_MODELS = Path(envstr("AUTOPACK_MODELS") or BASE_DIR / "config" / "models.yaml")
AUTOPACK_GATE_TIMEOUT = envint("AUTOPACK_GATE_TIMEOUT", 600, minimum=1)
# Project environments: where they are cached (shared by runs), how long one install
# step may take, and more Python interpreters to choose from (os.pathsep-separated).
AUTOPACK_ENVIRONMENTS = (
    Path(envstr("AUTOPACK_ENVIRONMENTS") or AUTOPACK_HOME / "environments").expanduser().resolve()
)
AUTOPACK_SETUP_TIMEOUT = envint("AUTOPACK_SETUP_TIMEOUT", 1200, minimum=10)
AUTOPACK_PYTHONS = [p for p in envstr("AUTOPACK_PYTHONS").split(os.pathsep) if p]
# A worker renews its lease on a run every third of this; another worker may take a run
# over once the lease has expired.
AUTOPACK_LEASE_SECONDS = envint("AUTOPACK_LEASE_SECONDS", 90, minimum=3)
# Every worker sweeps this often (outside the queue) for runs whose worker died or whose
# queued step was lost, and queues them again: a run continues within lease + sweep.
AUTOPACK_SWEEP_SECONDS = envint("AUTOPACK_SWEEP_SECONDS", 15, minimum=1)
AUTOPACK_PRICES = Path(envstr("AUTOPACK_PRICES") or BASE_DIR / "config" / "prices.yaml")
# Health budgets: limits on failures within one (re)start of a run, overridable per run.
AUTOPACK_HEALTH_BUDGET = {
    "server_errors": envint("AUTOPACK_MAX_SERVER_ERRORS", 10, minimum=1),
    "patch_failures": envint("AUTOPACK_MAX_PATCH_FAILURES", 15, minimum=1),
    "total_failures": envint("AUTOPACK_MAX_TOTAL_FAILURES", 25, minimum=1),
    "repeated_failures": envint("AUTOPACK_MAX_REPEATED_FAILURES", 3, minimum=1),
}
AUTOPACK_GOVERNANCE = Path(envstr("AUTOPACK_GOVERNANCE") or BASE_DIR / "config" / "governance.yaml")
AUTOPACK_DIAGNOSTICS = Path(
    envstr("AUTOPACK_DIAGNOSTICS") or BASE_DIR / "config" / "diagnostics.yaml"
)
# Local folders under which users who are not staff may create projects (comma-separated);
# otherwise they use git URLs.
AUTOPACK_REPO_ROOTS = envlist("AUTOPACK_REPO_ROOTS", [])
# Code the Builder writes only runs under bubblewrap: without it a run refuses to start,
# unless this is set to false (then gate commands run unsandboxed and the run says so).
AUTOPACK_REQUIRE_SANDBOX = envbool("AUTOPACK_REQUIRE_SANDBOX", True)
# A failure fixed by a later attempt becomes a learned rule once it recurs this often.
AUTOPACK_RULE_THRESHOLD = envint("AUTOPACK_RULE_THRESHOLD", 2, minimum=1)
# Memory: embeddings from the model shipped with Autopack (WordLlama, 256 dimensions), or
# from any OpenAI-compatible /v1/embeddings endpoint when AUTOPACK_EMBEDDINGS_URL is set
# (AUTOPACK_EMBEDDINGS_KEY_ENV names the environment variable holding its key; empty: the
# server needs none). Entries not stored again for AUTOPACK_MEMORY_TTL_DAYS are pruned daily.
AUTOPACK_EMBEDDINGS_URL = envstr("AUTOPACK_EMBEDDINGS_URL")
AUTOPACK_EMBEDDINGS_MODEL = envstr("AUTOPACK_EMBEDDINGS_MODEL")
AUTOPACK_EMBEDDINGS_KEY_ENV = envstr("AUTOPACK_EMBEDDINGS_KEY_ENV")
AUTOPACK_MEMORY_TTL_DAYS = envint("AUTOPACK_MEMORY_TTL_DAYS", 30, minimum=1)
AUTOPACK_MEMORY_TOP_K = envint("AUTOPACK_MEMORY_TOP_K", 5, minimum=1)
# /metrics: scrapers from these addresses, or with `Authorization: Bearer <token>`.
AUTOPACK_METRICS_ALLOW = envlist("AUTOPACK_METRICS_ALLOW", ["127.0.0.1", "::1"])
AUTOPACK_METRICS_TOKEN = envstr("AUTOPACK_METRICS_TOKEN")
AUTOPACK_LLM_MAX_RETRIES = envint("AUTOPACK_LLM_MAX_RETRIES", 3, minimum=0)
AUTOPACK_LLM_TIMEOUT = envint("AUTOPACK_LLM_TIMEOUT", 600, minimum=1)

# Goal drift: before a change is applied, its summary is compared with the run's intention
# anchor (its goal and plan). Below the threshold (cosine similarity with the embedding
# model) the attempt is flagged ("advisory") or refused ("blocking"); "off" skips it.
# The threshold belongs to the embedding model: 0.2 suits the bundled local model
# (related changes measured 0.23-0.35 against their anchor, unrelated ones 0.03-0.17).
AUTOPACK_GOAL_DRIFT = envchoice("AUTOPACK_GOAL_DRIFT", "advisory", ("advisory", "blocking", "off"))
AUTOPACK_GOAL_DRIFT_THRESHOLD = envfloat("AUTOPACK_GOAL_DRIFT_THRESHOLD", 0.2, low=-1, high=1)
# Memory (the `memory` app): off, runs neither read nor write it.
AUTOPACK_MEMORY_ENABLED = envbool("AUTOPACK_MEMORY_ENABLED", True)

# Run tasks inline instead of through the queue (tests, and `autopack run` in the foreground).
AUTOPACK_SYNC_TASKS = envbool("AUTOPACK_SYNC_TASKS", False)

LOGGING = logs.config(os.environ.get("AUTOPACK_LOG_LEVEL", "INFO"))
