"""gunicorn settings for serving a bustware-wrapped app with no proxy in front:
``gunicorn -c python:bustware.gunicorn_conf wsgi:application``. Command-line
options win over these (``--workers 4``, ``--bind 0.0.0.0:8000``).
"""

import os

# Threads: a slow download holds one thread, not a whole worker, and idle
# keep-alive connections wait in the worker's poller, not in a thread.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
threads = int(os.environ.get("BUSTWARE_THREADS", "16"))
# Import the app (and build the bustware index) once in the master, before
# forking: the workers share the index and the in-memory files.
preload_app = True
# Seconds an idle keep-alive connection stays open: a page and its assets
# come over one connection.
keepalive = 5
# Connections per worker, idle keep-alive ones included.
worker_connections = 1000
# A worker whose main loop is silent this long is killed and replaced.
timeout = 30
graceful_timeout = 30
# Refuse oversized request heads before they reach the app.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190


def post_fork(server, worker):
    # preload_app: after `kill -HUP` the new workers are forked from the
    # master, whose index is the one it loaded at start. Each new worker
    # loads the release on disk now instead: a manifest that changed, a
    # `current` link switched to another release. (Python code is not
    # reloaded this way: restart gunicorn when it changes.)
    from bustware.middleware import reload_changed

    reload_changed()
