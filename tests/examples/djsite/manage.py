#!/usr/bin/env python
"""A small Django project as ``startproject`` makes one, with bustware added
(tests/test_django_project.py copies it and runs manage.py for real)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
