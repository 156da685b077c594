"""The project's own tests, as a user writes them: run by
tests/test_django_project.py with 'manage.py test' on a fresh copy (no
collectstatic, DEBUG turned off by the test runner)."""

import re
from pathlib import Path
from urllib.request import urlopen

import django.contrib.admin
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.test import TestCase

STATIC = Path(__file__).resolve().parent / "static"
ADMIN_STATIC = Path(django.contrib.admin.__file__).resolve().parent / "static"


def urls(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="([^"]+)"', html)


class PageTest(TestCase):
    def test_page_has_versioned_urls(self):
        response = self.client.get("/")
        self.assertEqual(response.status_code, 200)
        found = urls(response.content.decode())
        self.assertEqual(len(found), 3)
        self.assertRegex(found[1], r"^/static/pages/app\.[0-9a-f]{12}\.css$")


class LiveServerTest(StaticLiveServerTestCase):
    def test_versioned_static_urls_are_served(self):
        with urlopen(self.live_server_url + "/") as page:
            found = urls(page.read().decode())
        for url, rel in zip(found[1:], ["pages/app.css", "pages/app.js"]):
            with urlopen(self.live_server_url + url) as response:
                self.assertEqual(response.status, 200)
                self.assertEqual(response.headers["Cache-Control"],
                                 "max-age=31536000, immutable")
                self.assertEqual(response.read(), (STATIC / rel).read_bytes())
        # An admin stylesheet (it has no references to rewrite) and a plain URL.
        for url in (found[0], "/static/admin/css/login.css"):
            with urlopen(self.live_server_url + url) as response:
                self.assertEqual(response.status, 200)
                self.assertEqual(response.read(),
                                 (ADMIN_STATIC / "admin/css/login.css").read_bytes())
