"""Gunicorn's settings for the web image (`gunicorn -c docker/gunicorn.conf.py winnow.wsgi:application`).

Threaded workers: a sync worker is killed when one request outlasts `timeout`, so a long image
download or a streamed export zip would be cut off; a gthread worker's main thread keeps beating
while its threads serve, and `timeout` only catches a worker that is stuck as a whole.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# Access lines go to standard output; the app's own logs follow LOG_FORMAT (winnow/logs.py).
accesslog = "-"
