"""``manage.py runserver`` serving versioned static URLs.

staticfiles' runserver answers everything under ``STATIC_URL`` itself, ahead
of ``wsgi.py``, from the finders, which know no versioned names. This one is
staticfiles' runserver (same options: ``--nostatic``, ``--insecure``) with
:class:`bustware.django.BustwareStaticFilesHandler` as the static handler.
It is the one Django runs when ``"bustware"`` comes before
``"django.contrib.staticfiles"`` in ``INSTALLED_APPS``; the system check
bustware.W002 says so otherwise.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.staticfiles.management.commands.runserver import (
    Command as StaticfilesRunserver,
)
from django.core.management.commands.runserver import Command as CoreRunserver

from bustware.django import BustwareStaticFilesHandler


class Command(StaticfilesRunserver):
    help = ("Starts a lightweight web server for development and also serves static "
            "files, under their versioned URLs too (bustware).")

    def get_handler(self, *args: Any, **options: Any):
        # The project's WSGI application (wsgi.py), as core runserver makes it.
        handler = CoreRunserver.get_handler(self, *args, **options)
        # staticfiles' rule for serving static files at all.
        if (options["use_static_handler"] and apps.is_installed("django.contrib.staticfiles")
                and (settings.DEBUG or options["insecure_serving"])):
            return BustwareStaticFilesHandler(handler)
        return handler
