import os

from django.core.wsgi import get_wsgi_application

import bustware.django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djsite.settings")
application = bustware.django.wrap(get_wsgi_application())
