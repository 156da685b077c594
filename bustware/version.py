"""The package's version, in a module of its own: the modules that record
it (the digest cache's key, a manifest's generator) import it from here,
not from the package, whose ``__init__`` loads the middleware and so
everything below it (an import circle through the package)."""

VERSION = "0.1.0"
