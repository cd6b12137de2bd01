"""gunicorn settings for the API: `gunicorn -c api/gunicorn.conf.py`.

Read from the same `MARKETFLOW_API_*` variables as the app (the `api` section of
core/settings.py).
"""

from core.settings import get_settings

_settings = get_settings().api

wsgi_app = "api.wsgi:app"
bind = [_settings.bind]
workers = _settings.workers
# Threads per worker. 1 (the default): gunicorn's sync worker, one request at a time per
# process, no keep-alive. Measured with wrk on 2 cores (bench/bench_api.py), it serves the
# cached signals as fast as gthread with 4 threads and cuts p99 from ~29 ms to ~10 ms: each
# gthread request passes between the poller thread and a pool thread under the GIL, and the
# tail is those hand-offs. More threads (gthread, with keep-alive) suit requests that wait on
# I/O for long, such as the first /score after the champion moves. The app is thread-safe
# (pooled connections, locked caches) either way.
worker_class = "gthread" if _settings.threads > 1 else "sync"
threads = _settings.threads
keepalive = 5
pidfile = _settings.pidfile
accesslog = "-"
errorlog = "-"
# Each worker opens its own database connections on its first request, after the fork.
preload_app = False
graceful_timeout = 10
# gunicorn >= 25.1 opens a control socket at one path per user ($HOME/.gunicorn/gunicorn.ctl),
# which a second instance on the same host (a test run beside the demo) would take over.
if _settings.control_socket:
    control_socket = _settings.control_socket
else:
    control_socket_disable = True
