"""The version of bustware: one place, read by ``bustware.__version__``,
``bustware --version``, the manifest's ``generator`` field, the digest
cache's key and the package metadata (``setup.cfg``: ``attr:``).

A leaf module (it imports nothing), so that modules inside the package can
name the version without importing the package's ``__init__``.
"""

__version__ = "0.2.0"
