"""A minimal Django project for the tests: settings, views and URLs.

Django's settings are configured once per process, so every test file that
needs Django calls :func:`configure` and varies the settings per test with
``override_settings``.
"""

from __future__ import annotations

import django
from django.conf import settings
from django.http import HttpResponse
from django.template import engines
from django.urls import re_path
from django.utils.cache import patch_response_headers
from django.views.static import serve

PAGE = (
    "{% load static bustware %}"
    '<link rel="stylesheet" href="{% static \'css/app.css\' %}">'
    '<script src="{% bust \'js/app.js\' %}"></script>'
)


def page(request):
    return HttpResponse(engines["django"].from_string(PAGE).render({}, request))


def static(request, path):
    """Django's own static view, as a project mounts it for rewrite mode;
    with TEST_STATIC_MAX_AGE it also sends the Cache-Control and Expires
    that bustware must replace."""
    response = serve(request, path, document_root=settings.STATIC_ROOT)
    max_age = getattr(settings, "TEST_STATIC_MAX_AGE", None)
    if max_age is not None:
        patch_response_headers(response, max_age)
    return response


def hello(request):
    return HttpResponse(b"django:hello", content_type="text/plain")


urlpatterns = [
    re_path(r"^page/$", page),
    re_path(r"^hello$", hello),
    re_path(r"^static/(?P<path>.*)$", static),
]


def configure() -> None:
    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bustware-tests",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["django.contrib.staticfiles", "bustware"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates",
                    "DIRS": [], "APP_DIRS": False}],
        STATIC_URL="/static/",
        STATIC_ROOT=None,
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "bustware.django.BustwareStorage"},
        },
        USE_TZ=True,
    )
    django.setup()
