"""Settings, all from the environment (see the configuration table in README.md).

`make run` sets DJANGO_ENV=development and the tests DJANGO_ENV=test; anything else is production, where
DEBUG is off and DJANGO_SECRET_KEY, FIELD_ENCRYPTION_KEY, WHATSAPP_APP_SECRET and ALLOWED_HOSTS have no
default: a process started without one stops at once with ImproperlyConfigured naming it.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# A secret X may come from the file X_FILE names instead (Docker/Kubernetes secrets): FileAwareEnv.
env = environ.FileAwareEnv()

DJANGO_ENV = env.str("DJANGO_ENV", default="production")
DEVELOPMENT = DJANGO_ENV == "development"
TESTING = DJANGO_ENV == "test"
DEBUG = env.bool("DJANGO_DEBUG", default=DEVELOPMENT)


def secret(name: str, *, development: str = "", required: bool = False) -> str:
    """The secret NAME (or NAME_FILE's contents), surrounding whitespace and a file's newline stripped.

    Empty counts as unset. Unset: `development` in development and tests; otherwise "" or, when
    `required`, ImproperlyConfigured. Read from FileAwareEnv's mapping rather than env.str, which takes a
    value starting with "$" for the name of another variable (random secrets may start with one).
    """
    try:
        value = (env.ENVIRON.get(name) or "").strip()
    except OSError as exc:
        raise ImproperlyConfigured(f"{name}_FILE names a file that cannot be read: {exc}") from exc
    if value:
        return value
    if DEVELOPMENT or TESTING:
        return development
    if required:
        raise ImproperlyConfigured(
            f"{name} is required when DJANGO_ENV={DJANGO_ENV} (set it, or {name}_FILE to a file holding it); "
            "see the configuration table in README.md."
        )
    return ""


SECRET_KEY = secret(
    "DJANGO_SECRET_KEY", development="insecure-development-key-never-use-in-production", required=True
)

BASE_DOMAIN = env.str("BASE_DOMAIN", default="localhost")
# The public host serves the platform admin, signup, the webhook, /healthz and /metrics.
PUBLIC_HOSTS = env.list("PUBLIC_HOSTS", default=[BASE_DOMAIN, "127.0.0.1"])
ALLOWED_HOSTS = [host.strip() for host in env.list("ALLOWED_HOSTS", default=[]) if host.strip()]
if not ALLOWED_HOSTS:
    if not (DEVELOPMENT or TESTING):
        raise ImproperlyConfigured(
            f"ALLOWED_HOSTS is required when DJANGO_ENV={DJANGO_ENV}: the public host and the tenants' "
            "hosts, comma-separated (e.g. example.com,.example.com)."
        )
    ALLOWED_HOSTS = [BASE_DOMAIN, f".{BASE_DOMAIN}", "127.0.0.1", "testserver"]
# Tenant URLs printed and sent by email (invitations, password resets) are built from these and the
# tenant's primary domain, never from a request's Host header.
SITE_SCHEME = env.str("SITE_SCHEME", default="http" if (DEVELOPMENT or TESTING) else "https")
# In development the site is where `make run` serves it: WEB_PORT moves the printed and e-mailed links too.
SITE_PORT = env.str("SITE_PORT", default=env.str("WEB_PORT", default="8000") if DEVELOPMENT else "")

SHARED_APPS = [
    "django_tenants",
    "tenants",
    # Signups wait in public tables until verified (and approved); onboarding creates the tenant.
    "onboarding",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "config.apps.AdminConfig",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "channels",
    "core",  # also in TENANT_APPS: the audit log has a table in public (platform events) and per tenant
]
# Each tenant schema has its own users and sessions: an agent exists in one tenant only, and a session
# cookie from one tenant finds nothing in another's schema.
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "config.apps.AdminConfig",
    "core",
    "crm",
    "conversations",
    "whatsapp",
    "waha",
    "knowledge",
    "campaigns",
    "integrations",
]
INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
# New tenants clone this migrated template schema instead of running every migration.
TENANT_BASE_SCHEMA = "tenant_template"
# Spare clones of the template kept ready (tenants.cloning.refill_spares): creating a tenant renames one
# instead of cloning (~one fsync per index) while the user waits. 0: every creation clones.
TENANT_SPARE_SCHEMAS = env.int("TENANT_SPARE_SCHEMAS", default=0 if TESTING else 3)
TENANT_CREATION_FAKES_MIGRATIONS = True
# SET search_path once per connection and schema switch, not before every query (a round trip each).
# django-tenants forgets what it set on rollback, savepoint rollback and close, so the path is re-set
# whenever PostgreSQL may have discarded it.
TENANT_LIMIT_SET_CALLS = True
TENANT_MULTIPROCESSING_MAX_PROCESSES = env.int("TENANT_MIGRATION_PROCESSES", default=2)
TENANT_MULTIPROCESSING_CHUNKS = 10
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
ROOT_URLCONF = "config.urls_tenant"
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]

MIDDLEWARE = [
    "config.middleware.RequestContextMiddleware",
    "config.health.HealthCheckMiddleware",
    "config.health.DependencyUnavailableMiddleware",  # PostgreSQL/Redis away: 503, not 500
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "tenants.middleware.TenantMiddleware",
    "config.input_guard.RejectNulMiddleware",  # NUL in a query or form: 400, before any view
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "config.middleware.BindUserMiddleware",
    "core.audit.AuditContextMiddleware",  # the request's actor and address for audit events
    "core.http.ServiceErrorMiddleware",  # a ServiceError a page lets through: its status and code
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "onboarding.context_processors.first_run_checklist",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

DATABASE_URL = env.str("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/wacrm")
_db = environ.Env.db_url_config(DATABASE_URL)
# A percent-encoded host is a Unix socket directory (the embedded server's).
_db["HOST"] = unquote(_db.get("HOST") or "")
_db["ENGINE"] = "django_tenants.postgresql_backend"
# 0 for the web process: under ASGI every request runs in a new thread, so a persistent connection per
# thread is never reused and piles up until PostgreSQL refuses clients. Worker threads live long and
# keep theirs (config/worker.py defaults DB_CONN_MAX_AGE to 60 there).
_db["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)
_db["CONN_HEALTH_CHECKS"] = True
_db.setdefault("OPTIONS", {})
_db["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default=f"test_{_db['NAME']}")}
DATABASES = {"default": _db}
# Tenant-aware backend stacked on the instrumented one, so /metrics counts queries.
ORIGINAL_BACKEND = "django_prometheus.db.backends.postgresql"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")


def _redis_db(url: str) -> str:
    """The database number of a redis:// or unix:// URL (path /N or ?db=N), "0" when absent."""
    parts = urlsplit(url)
    query_db = dict(pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair).get("db")
    path_db = parts.path.strip("/") if parts.scheme != "unix" else ""
    return query_db or path_db or "0"


CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Every key carries the tenant schema (django-tenants' make_key).
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
    }
}
# Redis Pub/Sub: a group_send is one PUBLISH. The core RedisChannelLayer spent four round trips per group
# (expiry sweep, member list, another sweep, a Lua script sent in full), awaited one by one from a worker
# whose other thread holds the GIL: it was half of the delay from a stored message to the browser. It
# keeps no backlog for a socket that is away; none is needed, a browser catches up from InboxEvent.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        # Pub/Sub channels ignore Redis database numbers: two installations (or test runs) sharing one
        # server on different databases would receive each other's events without the number in the prefix.
        "CONFIG": {"hosts": [REDIS_URL], "prefix": f"wacrm:{_redis_db(REDIS_URL)}:asgi"},
    }
}
DRAMATIQ_BROKER_URL = env.str("DRAMATIQ_BROKER_URL", default=REDIS_URL)

SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not (DEVELOPMENT or TESTING)
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_COOKIE_HTTPONLY = True
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if (DEVELOPMENT or TESTING) else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Whether a request came over HTTPS is the scheme uvicorn gives it: with --proxy-headers it believes
# X-Forwarded-Proto only from FORWARDED_ALLOW_IPS (below). SECURE_PROXY_SSL_HEADER would make Django believe
# that header from any peer that can reach the app, so it stays unset.
SECURE_PROXY_SSL_HEADER = None
# `manage.py check --deploy` warnings that are decisions, not oversights: config/tests/
# test_production_settings.py runs it on the documented production settings and allows no other.
SILENCED_SYSTEM_CHECKS: list[str] = []
if not SECURE_SSL_REDIRECT:
    # TLS ends at the proxy in front (README: Running in production), which redirects http to https;
    # Django redirecting too would also bounce in-network plain-http scrapes of /metrics.
    SILENCED_SYSTEM_CHECKS.append("security.W008")
if not SECURE_HSTS_PRELOAD:
    # Preloading binds the domain and every subdomain to https in browsers for months after it is undone:
    # the operator opts in with SECURE_HSTS_PRELOAD=true, it is not a default.
    SILENCED_SYSTEM_CHECKS.append("security.W021")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "media-src": ["'self'", "blob:"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "script-src": ["'self'"],
        "connect-src": ["'self'", "ws:", "wss:"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = (
    ["django.contrib.auth.hashers.MD5PasswordHasher"]
    if TESTING
    # Argon2id first (OWASP's first choice; ~0.1 s here against ~0.2 s for PBKDF2 at Django's default).
    else [
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.ScryptPasswordHasher",
    ]
)
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/inbox/"

EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if (DEVELOPMENT or TESTING)
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = secret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)  # STARTTLS (port 587)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)  # implicit TLS (port 465)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default=f"no-reply@{BASE_DOMAIN}")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / ".data" / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if (DEVELOPMENT or TESTING)
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEVELOPMENT or TESTING
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / ".data" / "media")))
# Nothing is served from MEDIA_URL: media opens only through the inbox's authenticated view
# (/inbox/media/<id>/), which checks the viewer may see the message's conversation.
MEDIA_URL = "/media/"
# Where WhatsApp media live. "local": MEDIA_ROOT on this machine's disk (make run; one web process, or a
# volume shared by web and worker). "s3": an S3-compatible bucket (AWS, MinIO, R2...), so web and worker
# processes share nothing on disk; the default when AWS_STORAGE_BUCKET_NAME is set.
MEDIA_STORAGE = env.str(
    "MEDIA_STORAGE", default="s3" if env.str("AWS_STORAGE_BUCKET_NAME", default="") else "local"
)
# How long a presigned S3 URL the media view redirects to stays valid: the browser follows it at once.
MEDIA_URL_EXPIRE_SECONDS = env.int("MEDIA_URL_EXPIRE_SECONDS", default=60)
# Local disk behind nginx: the view answers with X-Accel-Redirect to this internal location (which
# aliases MEDIA_ROOT) instead of streaming the bytes through Python. Empty: Django streams them.
MEDIA_X_ACCEL_PREFIX = env.str("MEDIA_X_ACCEL_PREFIX", default="")
if MEDIA_STORAGE == "s3":
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME"),
            # None: boto3's own chain (instance/task role, AWS_* variables, shared config).
            "access_key": secret("AWS_ACCESS_KEY_ID") or None,
            "secret_key": secret("AWS_SECRET_ACCESS_KEY") or None,
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
            # The bucket stays private: every read is a presigned URL handed out by the media view.
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": MEDIA_URL_EXPIRE_SECONDS,
            "file_overwrite": False,
        },
    }
    # Images and players in the inbox follow the redirect to the bucket: the page's CSP must allow it.
    _endpoint = urlsplit(env.str("AWS_S3_ENDPOINT_URL", default=""))
    MEDIA_ORIGIN = env.str(
        "MEDIA_ORIGIN",
        default=f"{_endpoint.scheme}://{_endpoint.netloc}" if _endpoint.netloc else "https://*.amazonaws.com",
    )
    for _directive in ("img-src", "media-src"):
        CONTENT_SECURITY_POLICY["DIRECTIVES"][_directive].append(MEDIA_ORIGIN)
elif MEDIA_STORAGE != "local":
    raise RuntimeError("MEDIA_STORAGE must be local or s3.")
# Tenant archives (tenants/backup_storage.py): the daily backups and the exports taken on deletion. "local":
# BACKUP_ROOT on this disk; "s3": the bucket BACKUP_S3_BUCKET (same credentials as the media bucket).
BACKUP_STORAGE = env.str(
    "BACKUP_STORAGE", default="s3" if env.str("BACKUP_S3_BUCKET", default="") else "local"
)
BACKUP_ROOT = Path(env.str("BACKUP_ROOT", default=str(BASE_DIR / ".data" / "backups")))
if BACKUP_STORAGE == "s3":
    STORAGES["backups"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("BACKUP_S3_BUCKET"),
            "access_key": secret("AWS_ACCESS_KEY_ID") or None,
            "secret_key": secret("AWS_SECRET_ACCESS_KEY") or None,
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
            "default_acl": None,
            "file_overwrite": False,
        },
    }
elif BACKUP_STORAGE == "local":
    STORAGES["backups"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(BACKUP_ROOT)},
    }
else:
    raise RuntimeError("BACKUP_STORAGE must be local or s3.")
# How often the scheduler backs up every active tenant (0: never), and how many of those per tenant to keep.
BACKUP_SCHEDULE_SECONDS = env.int("BACKUP_SCHEDULE_SECONDS", default=24 * 3600)
BACKUP_KEEP = env.int("BACKUP_KEEP", default=7)
# A deleted tenant is suspended at once and its schema dropped this many days later (tenants/lifecycle.py).
TENANT_DELETION_GRACE_DAYS = env.int("TENANT_DELETION_GRACE_DAYS", default=30)
# Where pg_dump/pg_restore of the server's major version live, when not in a standard place
# (tenants/pgtools.py).
PG_BIN_DIR = env.str("PG_BIN_DIR", default="")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

METRICS_TOKEN = secret("METRICS_TOKEN")
PROMETHEUS_METRIC_NAMESPACE = "wacrm"
# Shared by web, worker and scheduler processes so /metrics shows them all (config/prometheus.py).
# Empty: each process keeps its own metrics in memory and /metrics shows the web process's.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR:
    from config.prometheus import enable_multiprocess

    enable_multiprocess(PROMETHEUS_MULTIPROC_DIR)

# WhatsApp Cloud API. With no WHATSAPP_GRAPH_URL, development and tests talk to the bundled sandbox, on
# the port `make run` starts it on (SANDBOX_PORT, as in the Procfile).
SANDBOX_PORT = env.int("SANDBOX_PORT", default=8001)
WHATSAPP_GRAPH_URL = env.str(
    "WHATSAPP_GRAPH_URL",
    default=f"http://127.0.0.1:{SANDBOX_PORT}/v21.0"
    if (DEVELOPMENT or TESTING)
    else "https://graph.facebook.com/v21.0",
)
# The platform Meta app's secret: every webhook body's signature is checked with it (a number may add
# its own).
WHATSAPP_APP_SECRET = secret("WHATSAPP_APP_SECRET", development="sandbox-app-secret", required=True)
# Empty in production: the subscription handshake (GET) is refused until it is set.
WHATSAPP_VERIFY_TOKEN = secret("WHATSAPP_VERIFY_TOKEN", development="sandbox-verify")
# Fernet keys for secrets at rest (whatsapp/crypto.py), comma-separated: the first encrypts, every one
# decrypts; `manage.py rotate_encryption_key` re-encrypts every stored value with the first, after which
# the old keys can go. Development and tests without one derive a key from their fixed SECRET_KEY (so a
# `make run` database keeps working); production has no default and never derives one.
FIELD_ENCRYPTION_KEYS = [
    key.strip() for key in secret("FIELD_ENCRYPTION_KEY", required=True).split(",") if key.strip()
] or [base64.urlsafe_b64encode(hashlib.sha256(f"fernet:{SECRET_KEY}".encode()).digest()).decode()]
for _number, _key in enumerate(FIELD_ENCRYPTION_KEYS, start=1):
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEY: key {_number} is not a Fernet key (32 url-safe base64-encoded "
            "bytes; make one with: python -c "
            "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')."
        ) from None
WHATSAPP_HTTP_TIMEOUT = env.float("WHATSAPP_HTTP_TIMEOUT", default=15.0)
# Meta's payloads are at most 3 MB; anything larger is refused before it is read.
WHATSAPP_WEBHOOK_MAX_BYTES = env.int("WHATSAPP_WEBHOOK_MAX_BYTES", default=3 * 1024 * 1024)
# A webhook POST not stored within this many seconds of arriving is answered 503 (Meta delivers it again):
# acknowledgements stay bounded under overload (whatsapp/ingress.py). Tests, which share a busy machine
# and assert no timings, get a generous one (those of the deadline set their own).
WHATSAPP_WEBHOOK_ACK_DEADLINE = env.float("WHATSAPP_WEBHOOK_ACK_DEADLINE", default=10.0 if TESTING else 0.5)
# Pending webhook events older than this are picked up by the sweeper (workers or Redis were down).
WHATSAPP_SWEEP_AFTER_SECONDS = env.int("WHATSAPP_SWEEP_AFTER_SECONDS", default=30)
# Retryable send errors: exponential backoff with jitter, until the message is this old.
WHATSAPP_SEND_MAX_AGE_SECONDS = env.int("WHATSAPP_SEND_MAX_AGE_SECONDS", default=6 * 3600)
WHATSAPP_SEND_BACKOFF_SECONDS = env.float("WHATSAPP_SEND_BACKOFF_SECONDS", default=2.0)
WHATSAPP_SEND_BACKOFF_MAX_SECONDS = env.float("WHATSAPP_SEND_BACKOFF_MAX_SECONDS", default=600.0)
# A send attempt unfinished this long (its worker died) is marked failed as interrupted, never resent.
WHATSAPP_SEND_CLAIM_TIMEOUT = env.float("WHATSAPP_SEND_CLAIM_TIMEOUT", default=120.0)
# Share of a number's throughput bulk traffic may use; the rest stays free for agent replies. Replies
# go first whatever the share (bulk books at most WHATSAPP_BULK_BOOK_AHEAD_SECONDS ahead; a reply books
# the next slot after that), so this is only headroom.
WHATSAPP_BULK_SHARE = env.float("WHATSAPP_BULK_SHARE", default=0.97)
# A bulk batch books its slots in one limiter call, but none further ahead than this: an agent reply
# then waits at most this (plus one slot) behind bulk traffic (whatsapp.limiter.acquire_bulk).
WHATSAPP_BULK_BOOK_AHEAD_SECONDS = env.float("WHATSAPP_BULK_BOOK_AHEAD_SECONDS", default=0.25)
# The bulk sender: messages of one number claimed per job (at most what its cap sends in
# WHATSAPP_BULK_BATCH_SECONDS), HTTP requests in flight per worker process, and how long a number pauses
# all sends when Meta answers 130429 (throughput exceeded).
WHATSAPP_BULK_BATCH = env.int("WHATSAPP_BULK_BATCH", default=100)
WHATSAPP_BULK_BATCH_SECONDS = env.float("WHATSAPP_BULK_BATCH_SECONDS", default=1.0)
WHATSAPP_SEND_CONCURRENCY = env.int("WHATSAPP_SEND_CONCURRENCY", default=64)
# Bulk batches one worker process runs at once: two fewer than its threads (--threads, 8), one for the
# inbound drain (status webhooks) and one for agent and AI replies.
WHATSAPP_BULK_JOBS_PER_PROCESS = env.int("WHATSAPP_BULK_JOBS_PER_PROCESS", default=6)
WHATSAPP_THROTTLED_PAUSE_SECONDS = env.float("WHATSAPP_THROTTLED_PAUSE_SECONDS", default=1.0)
# Statuses that arrived before their message wait this long for it (Meta redelivers for up to 7 days).
WHATSAPP_PENDING_STATUS_RETENTION_DAYS = env.int("WHATSAPP_PENDING_STATUS_RETENTION_DAYS", default=7)
# Processed raw webhook events are kept this long (replay, inspection); unrouted and failed ones stay.
WHATSAPP_WEBHOOK_EVENT_RETENTION_DAYS = env.int("WHATSAPP_WEBHOOK_EVENT_RETENTION_DAYS", default=30)
# Media download URLs the Graph API returns are fetched, with the token, only from these hosts over https
# (`*.` = any subdomain), or from the Graph API's own origin (the sandbox serves its media itself).
WHATSAPP_MEDIA_HOSTS = env.list(
    "WHATSAPP_MEDIA_HOSTS", default=["lookaside.fbsbx.com", "*.fbcdn.net", "*.whatsapp.net"]
)
# Embedded Signup on Settings → WhatsApp numbers: the platform Meta app's id and the Embedded Signup
# configuration's id (both public; the code exchange uses WHATSAPP_APP_SECRET). Unset: the page offers the
# manual connection only.
META_APP_ID = env.str("META_APP_ID", default="")
META_EMBEDDED_SIGNUP_CONFIG_ID = env.str("META_EMBEDDED_SIGNUP_CONFIG_ID", default="")
# "Send test event" on the numbers page asks the Graph API sandbox to post a signed test webhook (Meta has
# no such call); off, it reports the number's latest webhook instead.
WHATSAPP_SANDBOX_TEST_EVENTS = env.bool("WHATSAPP_SANDBOX_TEST_EVENTS", default=DEVELOPMENT or TESTING)

# WhatsApp Web sessions through a self-hosted WAHA gateway (waha/): the platform-wide server and its API key,
# used by numbers linked with the server URL and key left blank (a tenant may bring its own server instead).
# Development and tests default to the bundled WAHA sandbox (waha/sandbox.py) on WAHA_SANDBOX_PORT.
WAHA_SANDBOX_PORT = env.int("WAHA_SANDBOX_PORT", default=8003)
WAHA_URL = env.str(
    "WAHA_URL", default=f"http://127.0.0.1:{WAHA_SANDBOX_PORT}" if (DEVELOPMENT or TESTING) else ""
).rstrip("/")
WAHA_API_KEY = secret("WAHA_API_KEY", development="waha-sandbox-key")
# The base of the webhook URL WAHA is told (…/webhooks/waha/<id>/); empty: the public host's URL. Set it when
# WAHA reaches this app by another address (a container network).
WAHA_WEBHOOK_BASE_URL = env.str("WAHA_WEBHOOK_BASE_URL", default="").rstrip("/")
# A session without a message in or out for this many days is stopped by the scheduler (0: never).
WAHA_SESSION_IDLE_EXPIRY = env.int("WAHA_SESSION_IDLE_EXPIRY", default=14)
# Automatic restarts of a FAILED session (30 s, 1 min, 2 min… apart) before it needs attention.
WAHA_RECONNECT_ATTEMPTS = env.int("WAHA_RECONNECT_ATTEMPTS", default=6)
# WAHA webhook bodies larger than this are refused (413) before they are read or stored.
WAHA_WEBHOOK_MAX_BYTES = env.int("WAHA_WEBHOOK_MAX_BYTES", default=3 * 1024 * 1024)

# The OpenAI-compatible LLM sandbox (knowledge/llm_sandbox.py) `make run` starts on LLM_SANDBOX_PORT, as in
# the Procfile: the demo tenant's LLM. Empty in production (no sandbox). Tenants use an LLM only when
# configured to.
LLM_SANDBOX_PORT = env.int("LLM_SANDBOX_PORT", default=8002)
LLM_SANDBOX_URL = env.str(
    "LLM_SANDBOX_URL", default=f"http://127.0.0.1:{LLM_SANDBOX_PORT}/v1" if (DEVELOPMENT or TESTING) else ""
)
# Seconds an LLM call may take in all (the agent then hands over with reason `error`).
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=20.0)

# Outbound HTTP (core/fetch.py). Operator-configured hosts may be on private addresses and any port; the
# Graph API URL's host is one by definition, so the sandbox (127.0.0.1) works in development and tests with
# the private-address refusal still on for everything else.
_graph_host = urlsplit(WHATSAPP_GRAPH_URL).hostname
_llm_sandbox_host = urlsplit(LLM_SANDBOX_URL).hostname
_waha_host = urlsplit(WAHA_URL).hostname
OUTBOUND_ALLOWED_HOSTS = (
    env.list("OUTBOUND_ALLOWED_HOSTS", default=[])
    + ([_graph_host] if _graph_host else [])
    + ([_llm_sandbox_host] if _llm_sandbox_host else [])
    + ([_waha_host] if _waha_host else [])
)
# Knowledge sources (knowledge/): the largest file or web page accepted for indexing.
KNOWLEDGE_MAX_FILE_BYTES = env.int("KNOWLEDGE_MAX_FILE_BYTES", default=20 * 1024 * 1024)
# The embedder for retrieval (knowledge/embeddings.py): "local" (all-MiniLM-L6-v2, shipped in a package),
# "hashing" (no model), or "openai" (an OpenAI-compatible /v1/embeddings endpoint, KNOWLEDGE_EMBEDDINGS_URL).
KNOWLEDGE_EMBEDDER = env.str("KNOWLEDGE_EMBEDDER", default="local")
KNOWLEDGE_EMBEDDINGS_URL = env.str("KNOWLEDGE_EMBEDDINGS_URL", default="")
KNOWLEDGE_EMBEDDINGS_MODEL = env.str("KNOWLEDGE_EMBEDDINGS_MODEL", default="text-embedding-3-small")
KNOWLEDGE_EMBEDDINGS_API_KEY = secret("KNOWLEDGE_EMBEDDINGS_API_KEY")
# Lifts the private-address refusal for every URL (user-supplied ones too): local experiments only.
OUTBOUND_ALLOW_PRIVATE_NETWORKS = env.bool("OUTBOUND_ALLOW_PRIVATE_NETWORKS", default=False)

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "core.api_schema.ApiAutoSchema",
    # API keys first: an anonymous request then gets 401 with `WWW-Authenticate: Bearer`, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "crm.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["crm.permissions.IsTenantMember"],
    "DEFAULT_FILTER_BACKENDS": [
        "core.api.FilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.api.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": ["core.api.TenantRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "core.api.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ]
SPECTACULAR_SETTINGS = {
    "TITLE": "WhatsApp CRM API",
    "DESCRIPTION": (
        "The tenant's API, on the tenant's host (`https://<slug>.<domain>/api/v1/`). Authenticate with "
        "`Authorization: Bearer <key>` (keys from Settings → API keys or `manage.py create_api_key`) or "
        "a browser session. Lists are cursor-paginated (`?page_size=` up to 100; follow `next`). Every "
        'error is `{"error": {"code", "message", "details"}}`; over the rate limit the answer is 429 '
        "with Retry-After."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "ENUM_NAME_OVERRIDES": {
        # A deal's status and a stage's kind are the same set: open, won, lost.
        "OutcomeEnum": "crm.models.Stage.Kind",
        "ContactImportStatusEnum": "crm.models.ContactImport.Status",
        # Named after their models: other components have a `status` and a `type` of other sets.
        "ConversationStatusEnum": "conversations.models.Conversation.Status",
        "MessageTypeEnum": "conversations.models.Message.Type",
        "SendTypeEnum": "conversations.api.SEND_TYPES",
        "ChannelStatusEnum": "conversations.models.Channel.Status",
        "CampaignStatusEnum": "campaigns.models.Campaign.Status",
    },
}
# django-ratelimit counts in the Redis cache; keys carry the tenant schema and the API key or user.
RATELIMIT_USE_CACHE = "default"
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
# Tests share one owner and one address across hundreds of requests; the limit tests set their own.
API_RATE_LIMIT = env.str("API_RATE_LIMIT", default="100000/m" if TESTING else "600/m")
# Failed sign-ins (crm/auth.py), counted per tenant: per username and address; per username from any
# address (slower: rotating addresses buys few guesses, and a flood locks an account for an hour at most);
# per address across usernames (password spraying).
LOGIN_FAILURE_LIMIT = env.str("LOGIN_FAILURE_LIMIT", default="1000/15m" if TESTING else "5/15m")
LOGIN_FAILURE_USER_LIMIT = env.str("LOGIN_FAILURE_USER_LIMIT", default="1000/h" if TESTING else "50/h")
LOGIN_FAILURE_IP_LIMIT = env.str("LOGIN_FAILURE_IP_LIMIT", default="1000/15m" if TESTING else "20/15m")
# Password-reset requests: per address (over it: 429) and per account (over it: the usual "sent" page
# and no email, so the page never tells whether the account exists).
PASSWORD_RESET_IP_LIMIT = env.str("PASSWORD_RESET_IP_LIMIT", default="1000/h" if TESTING else "10/h")
PASSWORD_RESET_ACCOUNT_LIMIT = env.str("PASSWORD_RESET_ACCOUNT_LIMIT", default="1000/h" if TESTING else "3/h")
# Proxies whose X-Forwarded-For (and X-Forwarded-Proto) are believed: addresses or networks, comma-
# separated ("10.0.0.0/8,172.16.0.5"; "*" trusts every peer, only when nothing but the proxy can reach
# the app). Empty: no proxy header is believed and the client is the connecting address. The same value
# goes to uvicorn's --forwarded-allow-ips (Procfile, Dockerfile, docker-compose.yml); crm.auth.client_ip
# applies it to the sign-in and API rate limits.
FORWARDED_ALLOW_IPS = env.list("FORWARDED_ALLOW_IPS", default=[])
# Self-service signup on the public host (onboarding/): "open" creates the workspace once the e-mail is
# verified, "approval" waits for an operator's Approve in the platform admin, "closed" refuses new signups.
SIGNUP_MODE = env.str("SIGNUP_MODE", default="open" if (DEVELOPMENT or TESTING) else "approval")
if SIGNUP_MODE not in ("open", "approval", "closed"):
    raise RuntimeError("SIGNUP_MODE must be open, approval or closed.")
# How long the e-mailed verification link and the one-time sign-in link to the new workspace stay valid.
SIGNUP_VERIFY_MAX_AGE_SECONDS = env.int("SIGNUP_VERIFY_MAX_AGE_SECONDS", default=48 * 3600)
SIGNUP_LOGIN_MAX_AGE_SECONDS = env.int("SIGNUP_LOGIN_MAX_AGE_SECONDS", default=10 * 60)
# Signup submissions per address and per e-mail, and live subdomain checks per address.
SIGNUP_IP_LIMIT = env.str("SIGNUP_IP_LIMIT", default="1000/h" if TESTING else "10/h")
SIGNUP_EMAIL_LIMIT = env.str("SIGNUP_EMAIL_LIMIT", default="1000/h" if TESTING else "3/h")
SIGNUP_CHECK_LIMIT = env.str("SIGNUP_CHECK_LIMIT", default="1000/m" if TESTING else "30/m")
# Region for phone numbers typed without a country code (a tenant may set settings["phone_region"]).
DEFAULT_PHONE_REGION = env.str("DEFAULT_PHONE_REGION", default="")

LOG_FORMAT = env.str("LOG_FORMAT", default="console" if DEVELOPMENT else "json")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
from config.logging import configure_logging  # noqa: E402

LOGGING_CONFIG = None
configure_logging(fmt=LOG_FORMAT, level=LOG_LEVEL)

# Dramatiq: Redis in every process; tests use the StubBroker with a real worker thread.
DRAMATIQ_BROKER = env.str("DRAMATIQ_BROKER", default="stub" if TESTING else "redis")
DRAMATIQ_QUEUES = ["inbound", "outbound", "media", "bulk", "default", "knowledge", "ai", "webhooks"]
# Periodic jobs run by `manage.py run_scheduler`: name -> (actor path, every N seconds).
PERIODIC_JOBS: dict[str, tuple[str, int]] = {
    "cleanup_sessions": ("tenants.actors.cleanup_expired_sessions", 3600),
    "whatsapp_sweep_webhooks": ("whatsapp.actors.sweep_webhook_events", 30),
    "whatsapp_requeue_sends": ("whatsapp.actors.requeue_stuck_sends", 60),
    "waha_requeue_sends": ("waha.delivery.requeue_stuck_waha_sends", 60),
    "waha_sweep_events": ("waha.events.sweep_waha_events", 30),
    "waha_cleanup_events": ("waha.events.cleanup_waha_events", 3600),
    "whatsapp_sync_templates": ("whatsapp.actors.sync_all_templates", 6 * 3600),
    "whatsapp_cleanup": ("whatsapp.actors.cleanup_whatsapp_records", 3600),
    "inbox_housekeeping": ("conversations.actors.inbox_housekeeping", 60),
    "tenants_purge_deleted": ("tenants.actors.purge_deleted_tenants", 3600),
    "tenants_refill_spares": ("tenants.actors.refill_spare_schemas", 300),
    "campaigns_tick": ("campaigns.actors.campaigns_tick", 10),
    "notifications_digest": ("crm.actors.send_assignment_digests", 600),
    "waha_poll_sessions": ("waha.actors.poll_sessions", 60),
    "waha_expire_idle_sessions": ("waha.actors.expire_idle_sessions", 3600),
}
if BACKUP_SCHEDULE_SECONDS > 0:
    PERIODIC_JOBS["tenants_backup"] = ("tenants.actors.backup_all_tenants", BACKUP_SCHEDULE_SECONDS)
AUTHENTICATION_BACKENDS = ["crm.auth.RateLimitedModelBackend"]
LOGOUT_REDIRECT_URL = "/login/"
