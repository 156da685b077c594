"""Django template tag libraries (``INSTALLED_APPS += ["bustware"]``)."""
