import os

from django.core.asgi import get_asgi_application

import bustware.django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djsite.settings")
application = bustware.django.wrap(get_asgi_application())
