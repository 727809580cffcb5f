"""Gunicorn settings of the web workers: what `coldchain serve` runs, and what the benchmarks run.

    coldchain serve                         # = gunicorn -c config/gunicorn.conf.py
    coldchain serve --workers 8 --port 8000

Address and workers come from the service's settings ([http] host, port, workers; e.g.
COLDCHAIN_HTTP_WORKERS=8). Gunicorn's own command-line options and GUNICORN_CMD_ARGS override
anything here.

Why these, measured with benchmarks/availability.py on a 2-core machine (issue 5; wrk, PostgreSQL
and a writer sharing the cores):

- sync workers, one per CPU core. The requests are short and mostly CPU (answers come from
  per-worker caches), so more workers than cores only add context switches. p99 of /api/health and
  availability, 16 connections: 2 sync workers 20-40 ms, 3 sync workers about 30 ms, 2 gthread
  workers 40-75 ms, 4 gthread workers (the earlier set-up) 95-140 ms. A sync worker accepts a
  connection only when it is idle, so the kernel's queue hands each request to a free worker. A
  gthread worker accepts greedily and keeps kept-alive connections pinned to itself, so requests
  wait behind its busy thread while another worker idles; each request also hops between its
  poller thread and its pool thread.
- Sync workers expect a buffering reverse proxy (e.g. nginx) in front of them for slow clients
  and client keep-alive, as gunicorn's documentation says; deploy them that way.
- Metrics (issue 16): each worker keeps its Prometheus values in files of one directory
  (PROMETHEUS_MULTIPROC_DIR, set before any worker starts, emptied at start:
  metrics.multiproc_dir or a fresh temporary directory), so /metrics on any worker adds up all
  of them; a worker that exits is marked dead so its gauges stop counting.
- After a worker has loaded the app, gc.freeze() moves the ~150,000 objects of the imported
  modules out of the garbage collector's reach. Without it, a worker under load ran a full
  collection every few seconds that walked them all and stopped it for 80-120 ms; with it, full
  collections took at most 6 ms. (Raising the collection thresholds as well did not help: fewer
  but longer young collections.)
"""

from __future__ import annotations

import atexit
import gc
import os
import shutil
import tempfile
from pathlib import Path

from logistics.config import load_settings


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not all of the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_settings = load_settings()


def _remove_by(master_pid: int, path: str) -> None:
    """Remove the metrics directory when the master exits; workers inherit this atexit hook, and
    one exiting must not pull the files from under the others."""
    if os.getpid() == master_pid:
        shutil.rmtree(path, ignore_errors=True)


def _multiproc_dir() -> str:
    """An empty directory for the workers' metric files (values of a past run must not count)."""
    configured = _settings.metrics_multiproc_dir
    if not configured:
        made = tempfile.mkdtemp(prefix="coldchain-metrics-")
        atexit.register(_remove_by, os.getpid(), made)
        return made
    path = Path(configured)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return str(path)


wsgi_app = "logistics.wsgi:app"
bind = [f"{_settings.http_host}:{_settings.http_port}"]
worker_class = "sync"
workers = _settings.http_workers or cpu_cores()
# Connections waiting for a free worker queue in the kernel, not inside one busy worker.
backlog = 2048
timeout = 30
graceful_timeout = 30


def on_starting(server) -> None:  # noqa: ANN001 (a gunicorn Arbiter)
    """In the master, before any worker: where the workers keep their metric values.

    Set before prometheus_client is imported in a worker (it picks its value store at import).
    """
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = _multiproc_dir()
    # Imported here, once, not in child_exit: that runs in the master's SIGCHLD handler, and a
    # second worker exiting during the first one's import found the module half made
    # (ImportError after a benchmark's figures, when gunicorn stopped both workers at once).
    import prometheus_client.multiprocess  # noqa: F401


def post_worker_init(worker) -> None:  # noqa: ANN001 (a gunicorn Worker)
    """Once the app is loaded: gunicorn's own refusals become problem documents (the API's one
    error contract, issue 12); then collect, and freeze what import left, so collections skip it."""
    from gunicorn import util

    from logistics.api.problems import write_server_problem

    util.write_error = write_server_problem
    gc.collect()
    gc.freeze()


def child_exit(server, worker) -> None:  # noqa: ANN001 (gunicorn Arbiter and Worker)
    """A worker is gone: its live gauges no longer count (counters and histograms stay summed)."""
    import prometheus_client.multiprocess

    prometheus_client.multiprocess.mark_process_dead(worker.pid)
