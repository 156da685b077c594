"""Settings as ``startproject`` writes them, plus what the README's Django
section adds. The tests vary them with ``--settings`` modules importing this
one."""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "bustware-example-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "pages",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "djsite.urls"
WSGI_APPLICATION = "djsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"},
}

USE_TZ = True
STATIC_URL = "static/"

# The README's Django section, added at the end as it says:
# bustware first (before django.contrib.staticfiles): {% load bustware %}, and
# a runserver that serves versioned static URLs.
INSTALLED_APPS.insert(0, "bustware")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "bustware.django.BustwareStorage"},  # {% static %} too
}
STATICFILES_DIRS = [BASE_DIR / "static"]  # your files: static/css/app.css, ...
STATIC_ROOT = BASE_DIR / "staticfiles"  # where collectstatic copies them, to serve
TEMPLATES[0]["DIRS"] = [BASE_DIR / "templates"]
BUSTWARE = {}  # options, e.g. {"mode": "rewrite"}; autorefresh follows DEBUG
