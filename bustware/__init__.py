"""bustware: versioned static URLs, and WSGI and ASGI middleware that serve them.

>>> from bustware import Bustware
>>> application = Bustware(application, "static/")          # doctest: +SKIP
>>> application.url("css/app.css")                          # doctest: +SKIP
'/static/css/app.3f2a1b9c04d1.css'
"""

from .about import __version__
from .assets import Asset, AssetNotFound, Assets, Variant
from .middleware import Bustware

__all__ = ["Asset", "AssetNotFound", "Assets", "Bustware", "BustwareASGI", "EarlyHints",
           "EarlyHintsASGI", "Variant", "__version__", "early_hints"]


def __getattr__(name: str):
    # The ASGI middleware loads asyncio (about 30 ms): only for who asks.
    if name == "BustwareASGI":
        from .asgi import BustwareASGI

        return BustwareASGI
    if name in ("early_hints", "EarlyHints", "EarlyHintsASGI"):
        from . import earlyhints

        return getattr(earlyhints, name)
    raise AttributeError(f"module 'bustware' has no attribute {name!r}")
