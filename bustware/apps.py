"""The ``"bustware"`` Django app: the ``{% load bustware %}`` tag library,
the ``runserver`` that serves versioned URLs, system checks for setups that
cannot work, and ``StaticLiveServerTestCase`` serving versioned URLs."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.core import checks

STATICFILES = "django.contrib.staticfiles"
BUSTWARE_STORAGE = "bustware.django.BustwareStorage"


class BustwareConfig(AppConfig):
    name = "bustware"
    verbose_name = "bustware"

    def ready(self) -> None:
        checks.register(check_staticfiles_storage, checks.Tags.staticfiles)
        checks.register(check_runserver, checks.Tags.staticfiles)
        if apps.is_installed(STATICFILES):
            # Its live server answers STATIC_URL with this class attribute's
            # handler, which knows no versioned names. The class is Django's
            # way to choose the handler (a subclass sets its own); setting it
            # here makes existing test suites work unchanged. The import
            # costs about 40 ms at start, once per process.
            from django.contrib.staticfiles.testing import StaticLiveServerTestCase

            from .django import BustwareStaticFilesHandler

            StaticLiveServerTestCase.static_handler = BustwareStaticFilesHandler


def check_staticfiles_storage(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """bustware.W001: a staticfiles storage that hashes file names
    (ManifestStaticFilesStorage, WhiteNoise's CompressedManifestStaticFilesStorage...)
    next to bustware, which versions them again."""
    from django.conf import settings
    from django.contrib.staticfiles.storage import HashedFilesMixin
    from django.core.files.storage import storages
    from django.utils.module_loading import import_string

    try:
        backend = storages.backends["staticfiles"]["BACKEND"]
        storage_class = import_string(backend)
    except Exception:  # a broken STORAGES is Django's to report, not ours
        return []
    if not (isinstance(storage_class, type) and issubclass(storage_class, HashedFilesMixin)):
        return []
    bustware_setting = getattr(settings, "BUSTWARE", None)
    if isinstance(bustware_setting, dict) and bustware_setting.get("bundler_manifest"):
        return []  # staticfiles.json given to bustware: Django's hashed names are kept
    return [checks.Warning(
        f"The staticfiles storage {backend!r} hashes file names itself, and bustware "
        "versions the hashed files again: {% static %} returns hashed names, which "
        "bustware serves as plain URLs ('no-cache'), and references between files come "
        "out with two versions (fonts/site.17c283b4e785.c22fe8c70c36.woff2).",
        hint=(
            f"Set STORAGES['staticfiles'] = {{'BACKEND': '{BUSTWARE_STORAGE}'}}: "
            "collectstatic then copies plain names and the version is in the URL only. "
            "To keep Django's hashed names instead, give bustware their manifest: "
            "BUSTWARE = {'bundler_manifest': os.path.join(STATIC_ROOT, 'staticfiles.json')}."
        ),
        obj="settings.STORAGES",
        id="bustware.W001",
    )]


def check_runserver(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """bustware.W002: ``manage.py runserver`` is staticfiles' own (the first
    app listed that has one wins), which answers 404 for versioned URLs."""
    from django.core.management import get_commands

    if get_commands().get("runserver") != STATICFILES:
        return []
    return [checks.Warning(
        f"'{STATICFILES}' is listed before 'bustware' in INSTALLED_APPS, so "
        "'manage.py runserver' is staticfiles' own: it answers every versioned static "
        "URL with 404 (unstyled pages, the admin's too).",
        hint=(
            f"List 'bustware' before '{STATICFILES}' in INSTALLED_APPS (e.g. "
            "INSTALLED_APPS.insert(0, 'bustware')); its runserver serves versioned URLs. "
            "Or run 'runserver --nostatic' with wsgi.py's bustware.django.wrap()."
        ),
        obj="settings.INSTALLED_APPS",
        id="bustware.W002",
    )]
