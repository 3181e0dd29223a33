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


# Request metrics of every process, summed at each scrape (winnow/metrics.py): the folder starts empty,
# and a dead worker's files are marked so its gauges go.
def on_starting(server: object) -> None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):
            os.remove(os.path.join(folder, name))


def child_exit(server: object, worker: object) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
