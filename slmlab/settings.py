"""SLM Lab settings, all read from the environment (see README "Configuration")."""

from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key

from slmlab.env import env_bool, env_int, env_list, env_path, env_str
from slmlab.redis_layer import channel_layer

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
DATA_DIR = env_path("SLMLAB_DATA_DIR", BASE_DIR / "data")

SECRET_KEY = env_str("SECRET_KEY")
SECRET_KEY_FROM_ENV = bool(SECRET_KEY)
if not SECRET_KEY:
    # A single-machine lab keeps a random key in its data directory so sessions
    # survive restarts; production sets SECRET_KEY (the deploy check insists).
    _key_file = DATA_DIR / ".secret_key"
    if not _key_file.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        _key_file.write_text(get_random_secret_key())
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
# Names the lab is reached by inside a deployment (compose's health check and Prometheus
# ask for localhost:8000 and web:8000), on top of the public ALLOWED_HOSTS.
ALLOWED_HOSTS += env_list("SLMLAB_INTERNAL_HOSTS", [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "csp",
    "template_partials",
    "channels",
    "django_dramatiq",
    "allauth",
    "allauth.account",
    "slmlab",
    "accounts",
    "projects",
    "training",
    "experiments",
    "exports",
    "playground",
    "designer",
    "evaluations",
]

MIDDLEWARE = [
    "slmlab.ops.RequestMetrics",  # first: times everything below it
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "slmlab.urls"
ASGI_APPLICATION = "slmlab.asgi.application"
WSGI_APPLICATION = None

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
                "slmlab.context_processors.lab",
            ],
            "builtins": ["template_partials.templatetags.partials"],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and the admin write concurrently: WAL plus a busy timeout
    # turns "database is locked" into a short wait.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# --- Evaluations: the optional LLM-as-judge metric (any OpenAI-compatible endpoint) ---
# SLMLAB_JUDGE_URL is the API base (https://host/v1); unset, the metric is not offered.
SLMLAB_JUDGE_URL = env_str("SLMLAB_JUDGE_URL", "")
SLMLAB_JUDGE_MODEL = env_str("SLMLAB_JUDGE_MODEL", "")
SLMLAB_JUDGE_API_KEY = env_str("SLMLAB_JUDGE_API_KEY", "")
if bool(SLMLAB_JUDGE_URL) != bool(SLMLAB_JUDGE_MODEL):
    raise ImproperlyConfigured("SLMLAB_JUDGE_URL and SLMLAB_JUDGE_MODEL are set together")

# --- Accounts (django-allauth) ---
SLMLAB_SIGNUP_OPEN = env_bool("SLMLAB_SIGNUP_OPEN", True)
# Requests per minute one API key may make to /v1 (0: no limit).
SLMLAB_API_RATE_LIMIT = env_int("SLMLAB_API_RATE_LIMIT", 60, minimum=0)
# Memory a worker may keep loaded models in for the Playground and /v1 (weights of the
# bases it keeps, least recently used out first; the model in use always stays).
SLMLAB_MODEL_CACHE_MB = env_int("SLMLAB_MODEL_CACHE_MB", 4096, minimum=1)
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env_str("ACCOUNT_EMAIL_VERIFICATION", "none")
# Sign-up, login and password reset answer the same whether an email is registered or
# not. For sign-up allauth can only do that with mandatory verification (it mails the
# owner of a taken address instead of creating an account); with "none" a new account
# is logged in at once, so a taken address is refused openly (README "Accounts").
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_SESSION_REMEMBER = None
# allauth's limits apply to login, failed logins, sign-up and password reset;
# the admin login goes through allauth too (see slmlab/urls.py). A class behind one
# NAT address signs in at once, so the per-address limits sit far above a classroom's
# burst (40 students, a few typos and retries each); guessing one account's password
# is stopped by the per-account ("key") limits.
ACCOUNT_RATE_LIMITS = {
    "login": env_str("RATE_LIMIT_LOGIN", "300/m/ip"),
    "login_failed": env_str("RATE_LIMIT_LOGIN_FAILED", "100/m/ip,5/5m/key"),
    "signup": env_str("RATE_LIMIT_SIGNUP", "100/m/ip"),
    "reset_password": env_str("RATE_LIMIT_RESET_PASSWORD", "100/m/ip,5/m/key"),
    "reset_password_from_key": env_str("RATE_LIMIT_RESET_PASSWORD_FROM_KEY", "100/m/ip"),
    "change_password": "5/m/user",
}
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "projects:list"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"

EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
# `./lab start` with no mail server configured sets the file backend (see slmlab/lab.py).
EMAIL_FILE_PATH = env_path("EMAIL_FILE_PATH", DATA_DIR / "mail")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
# A mail server that does not answer fails the request after this long (then a clear page).
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "SLM Lab <slmlab@localhost>")

# --- i18n ---
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ko", "한국어")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static and data files ---
STATIC_URL = "static/"
STATIC_ROOT = env_path("STATIC_ROOT", BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = DATA_DIR / "media"
MODEL_STORE_DIR = env_path("SLMLAB_MODEL_STORE", DATA_DIR / "models")
RUNS_DIR = DATA_DIR / "runs"
DATASET_MAX_UPLOAD_MB = env_int("SLMLAB_DATASET_MAX_UPLOAD_MB", 500, minimum=1)
# The page sends a dataset file in pieces of this size (projects/uploads.py): daphne
# holds a whole request body in memory, so no large file ever comes in one request.
UPLOAD_CHUNK_BYTES = env_int("SLMLAB_UPLOAD_CHUNK_MB", 8, minimum=1) * 2**20
# A browser without JavaScript posts the whole file at once: only up to this size.
UPLOAD_SINGLE_REQUEST_MB = env_int("SLMLAB_UPLOAD_SINGLE_REQUEST_MB", 8, minimum=1)
# Formats checked only once complete (CSV, JSON arrays, blank-line text) are checked in
# the request up to this size, beyond it on the CPU worker (the page follows it live).
UPLOAD_CHECK_IN_REQUEST_MB = env_int("SLMLAB_UPLOAD_CHECK_IN_REQUEST_MB", 32, minimum=0)
# Uploads left unfinished (tab closed, connection gone) are removed after this long.
UPLOAD_ABANDONED_HOURS = env_int("SLMLAB_UPLOAD_ABANDONED_HOURS", 24, minimum=1)
# Uploads stream to temporary files on disk past this size rather than RAM.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- Redis, queue and websockets ---
# No REDIS_URL: the in-process stub broker and channel layer (unit tests,
# one-off management commands). `./lab start` always sets REDIS_URL, starting
# an embedded Redis when none is configured; the deploy check demands one.
REDIS_URL = env_str("REDIS_URL")
_dramatiq_middleware = [
    "dramatiq.middleware.AgeLimit",
    "dramatiq.middleware.TimeLimit",
    "dramatiq.middleware.Callbacks",
    "dramatiq.middleware.Retries",
    "django_dramatiq.middleware.DbConnectionsMiddleware",
    "training.heartbeat.WorkerHeartbeat",
    "slmlab.presence.QueuePresence",
    "slmlab.worker_boot.ImportMLLibraries",
]
if REDIS_URL:
    DRAMATIQ_BROKER = {
        "BROKER": "dramatiq.brokers.redis.RedisBroker",
        "OPTIONS": {"url": REDIS_URL},
        "MIDDLEWARE": _dramatiq_middleware,
    }
    CHANNEL_LAYERS = {"default": channel_layer(REDIS_URL)}
else:
    DRAMATIQ_BROKER = {
        "BROKER": "dramatiq.brokers.stub.StubBroker",
        "OPTIONS": {},
        "MIDDLEWARE": _dramatiq_middleware,
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
DRAMATIQ_AUTODISCOVER_MODULES = ["actors"]
DRAMATIQ_RESULT_BACKEND = None
# Queue names: GPU work (training, inference) and light CPU work (statistics, imports).
QUEUE_GPU = "gpu"
# Chat with a tuned model: consumed by GPU workers on a second thread, so an answer
# does not wait for a training run on the same worker to end.
QUEUE_CHAT = "chat"
QUEUE_DEFAULT = "default"
# Quick answers a user waits for on a page (the token preview): consumed by the CPU
# worker beside the default queue, so they need not wait behind long statistics.
QUEUE_INTERACTIVE = "interactive"

# --- Security (production values come from the environment) ---
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Probes and scrapers inside the deployment speak plain HTTP to the web container.
SECURE_REDIRECT_EXEMPT = [r"^health/$", r"^ready/$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
)
SECURE_CONTENT_TYPE_NOSNIFF = True
# Our own static files only: no inline scripts, handlers or style attributes anywhere
# (templates put them in static/js/app.js and static/css/app.css). data: images are the
# icons inside Pico's stylesheet; 'self' in connect-src covers the page's websockets.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # On CPUs with avx512_bf16, importing bitsandbytes tries to fetch an optional
        # kernel from the Hub and warns twice when it cannot (offline here); it then uses
        # its own CPU kernels, which is what the lab measured and tested. Not the user's
        # concern: keep the worker log for what is.
        "bitsandbytes.backends.cpu.ops": {"level": "ERROR"},
        "kernels._internals.hf_hub": {"level": "ERROR"},
    },
}

# --- Exports and the Hugging Face Hub ---
# Users' Hub tokens are encrypted at rest with this Fernet key (32 url-safe base64
# bytes; make one with `python -c "from cryptography.fernet import Fernet;
# print(Fernet.generate_key().decode())"`). Without it the key is derived from
# SECRET_KEY (fine for the embedded lab; changing SECRET_KEY then makes stored tokens
# unreadable, and users enter them again).
SECRET_ENCRYPTION_KEY = env_str("SLMLAB_SECRET_ENCRYPTION_KEY", "")

# --- Worker liveness ---
WORKER_HEARTBEAT_S = env_int("SLMLAB_WORKER_HEARTBEAT_S", 10, minimum=1)
# A running run whose worker has not beaten for this long is marked interrupted.
WORKER_STALE_AFTER_S = env_int("SLMLAB_WORKER_STALE_AFTER_S", 60, minimum=2)
# Prometheus metrics at /metrics, for scrapers sending `Authorization: Bearer <token>`;
# unset, /metrics is off (404).
METRICS_TOKEN = env_str("SLMLAB_METRICS_TOKEN")
# Every run also logs its settings and metrics to MLflow when this is set
# (e.g. http://mlflow:5000); the experiment is SLMLAB_MLFLOW_EXPERIMENT.
MLFLOW_TRACKING_URI = env_str("MLFLOW_TRACKING_URI", "")
MLFLOW_EXPERIMENT = env_str("SLMLAB_MLFLOW_EXPERIMENT", "slmlab")
# An interrupted run resumes by itself at most this many times, then fails with a reason.
MAX_CRASH_RESUMES = env_int("SLMLAB_MAX_CRASH_RESUMES", 3, minimum=0)
