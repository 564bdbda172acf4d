"""NFR-P5: restart plus health check of the sample server over HTTP, under 10 s."""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from upgrade_tasks.layout import Install
from upgrade_tasks.restart import wait_http
from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import make_source_repo
from upgrade_tasks.server_process import start_headless, stop_server


def measure(runs: int = 5) -> list[float]:
    base = Path(tempfile.mkdtemp(prefix="praxis-bench-restart-"))
    try:
        src = make_source_repo(base / "src")
        proj = make_project(base / "p", src.path, src.v2)
        inst = Install(proj)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            r = start_headless(inst)
            wait_http(r.url, 10.0)
            times.append(time.perf_counter() - t0)
            stop_server(r.pid)
        return times
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    times = measure()
    med = statistics.median(times)
    print(f"{'restart + HTTP health check':<34}{'median s':>10}{'max s':>8}  target < 10 s")
    print(f"{'sample server (stdlib)':<34}{med:>10.3f}{max(times):>8.3f}  "
          f"{'ok' if med < 10 else 'MISSED'}")
    return 0 if med < 10 else 1


if __name__ == "__main__":
    sys.exit(main())
