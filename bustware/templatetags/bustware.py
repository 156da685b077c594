"""``{% load bustware %}`` then ``{% bust "css/app.css" %}`` (or
``{% bust "css/app.css" as css_url %}``): the versioned URL of a static file.
"""

from __future__ import annotations

from django import template

import bustware.django

register = template.Library()


@register.simple_tag
def bust(path: str) -> str:
    return bustware.django.url(path)
