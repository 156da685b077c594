"""``{% load bustware %}`` then ``{% bust "css/app.css" %}`` (or
``{% bust "css/app.css" as css_url %}``): the versioned URL of a static file;
``{% importmap_tag pins %}`` and ``{% modulepreload "js/app.js" pins %}``
for JavaScript modules.
"""

from __future__ import annotations

from django import template

import bustware.django

register = template.Library()


@register.simple_tag
def bust(path: str) -> str:
    return bustware.django.url(path)


@register.simple_tag
def importmap_tag(pins: dict) -> str:
    """``{% importmap_tag pins %}``: the ``<script type="importmap">`` of
    the pins (a dict from the view's context)."""
    return bustware.django.get_assets().importmap_tag(pins)


@register.simple_tag
def modulepreload(entry: str, pins: dict | None = None) -> str:
    """``{% modulepreload "js/app.js" pins %}``: ``<link rel="modulepreload">``
    for the entry's static import graph."""
    return bustware.django.get_assets().modulepreload(entry, pins)
