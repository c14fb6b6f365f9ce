"""Does watching a node slow it down? Sync round trips with and without a Prometheus scraper.

Run ``python bench/observe.py [--quick]``; it prints ONE JSON object on stdout
(progress on stderr). Like ``foundation.py``: this process is the client, the
node runs in its own process with an echo paglet (and :data:`IDLE_PAGLETS`
more, so a scrape has slots to walk and workers to measure), and the raw
pyzmq baseline runs in three processes of its own. The scraper is a fourth
process that fetches ``GET /metrics`` every :data:`SCRAPE_EVERY` seconds, so
its own work never competes with the client for this process's GIL.

Three kinds of sample are taken in interleaved blocks (raw baseline, paglets
alone, paglets while scraped) so all three see the same machine noise; the
figure that matters is ``scraped_rtt_ratio``: the median round trip while
scraped over the median without.
"""

from __future__ import annotations

import http.client
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/observe.py` puts bench/, not the repo, on sys.path
    sys.path.insert(0, str(ROOT))

from bench import raw_baseline  # noqa: E402
from bench.common import judge, main, percentile, progress, source_version  # noqa: E402
from bench.foundation import create_many, dispose_all, sync_rtt_samples  # noqa: E402
from bench.node_process import start_node  # noqa: E402
from paglets.client.host_client import HostClient  # noqa: E402

ECHO = "paglets.examples.echo:EchoPaglet"
SCRAPE_EVERY = 0.1  # seconds between scrapes (Prometheus scrapes every 15 s or so: this is 150 times as often)
IDLE_PAGLETS = 50
BLOCKS = 3
GOALS: dict[str, tuple[str, float]] = {"scraped_rtt_ratio": ("<=", 1.05)}
FULL = {"raw_samples": 1000, "seconds": 5.0, "warmup": 300}  # per block
QUICK = {"raw_samples": 300, "seconds": 2.0, "warmup": 150}


def _scrape_loop(web: str, every: float, ready: Any, stop: Any, results: Any) -> None:
    """In the scraper process: GET /metrics every ``every`` s until ``stop``; report durations and sizes."""
    url = urlsplit(web)
    took: list[float] = []
    size = 0
    failures = 0
    while not stop.is_set():
        start = time.perf_counter()
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                failures += 1
            size = len(body)
        except OSError:
            failures += 1
        finally:
            conn.close()
        took.append(time.perf_counter() - start)
        ready.set()
        stop.wait(max(0.0, every - took[-1]))
    results.put({"took": took, "size": size, "failures": failures})


class Scraper:
    """A process scraping the node's metrics while it lives."""

    def __init__(self, web: str):
        ctx = mp.get_context("spawn")
        self._ready = ctx.Event()
        self._stop = ctx.Event()
        self._results = ctx.Queue()
        args = (web, SCRAPE_EVERY, self._ready, self._stop, self._results)
        self._proc = ctx.Process(target=_scrape_loop, args=args, daemon=True)

    def __enter__(self) -> Scraper:
        self._proc.start()
        if not self._ready.wait(30):  # sampling starts once scrapes are under way
            raise RuntimeError("the scraper process never scraped")
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self.report = self._results.get(timeout=30)
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()


def run(quick: bool) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    client = HostClient(timeout=30)
    loadavg_before = Path("/proc/loadavg").read_text().split()[0]
    with tempfile.TemporaryDirectory(prefix="pgl-bench-observe-") as tmp:
        node = start_node("observed", Path(tmp) / "observed")
        try:
            web = client.health(node.address)["http_address"]
            idle = create_many(client, node.address, IDLE_PAGLETS)
            proxy = client.create(node.address, ECHO)
            raw: list[float] = []
            plain: list[float] = []
            scraped: list[float] = []
            scrapes: list[float] = []
            size = failures = 0
            for block in range(BLOCKS):
                progress(f"block {block + 1}/{BLOCKS}: raw baseline, alone, scraped")
                raw.extend(raw_baseline.measure_rtt(samples=sizes["raw_samples"], warmup=sizes["warmup"]))
                plain.extend(rtt_for(proxy, sizes["seconds"], sizes["warmup"]))
                with Scraper(web) as scraper:
                    scraped.extend(rtt_for(proxy, sizes["seconds"], sizes["warmup"]))
                scrapes.extend(scraper.report["took"])
                size = scraper.report["size"]
                failures += scraper.report["failures"]
            dispose_all([proxy, *idle])
        finally:
            node.stop()
    figures = {
        "raw_rtt_p50_us": us(statistics.median(raw)),
        "sync_rtt_p50_us": us(statistics.median(plain)),
        "sync_rtt_p99_us": us(percentile(plain, 0.99)),
        "scraped_rtt_p50_us": us(statistics.median(scraped)),
        "scraped_rtt_p99_us": us(percentile(scraped, 0.99)),
        "scraped_rtt_ratio": round(statistics.median(scraped) / statistics.median(plain), 3),
        "sync_rtt_ratio_to_raw": round(statistics.median(plain) / statistics.median(raw), 2),
        "scraped_rtt_ratio_to_raw": round(statistics.median(scraped) / statistics.median(raw), 2),
        "scrape_p50_ms": round(statistics.median(scrapes) * 1e3, 2) if scrapes else None,
        "scrape_p99_ms": round(percentile(scrapes, 0.99) * 1e3, 2) if scrapes else None,
        "scrapes": len(scrapes),
        "scrape_failures": failures,
        "scrape_every_s": SCRAPE_EVERY,
        "metrics_bytes": size,
        "paglets_on_node": IDLE_PAGLETS + 1,
        "rtt_samples_alone": len(plain),
        "rtt_samples_scraped": len(scraped),
        "rtt_blocks": BLOCKS,
    }
    figures["goals"] = judge(figures, GOALS)
    figures["source"] = source_version()
    figures["loadavg_1m_before_after"] = [loadavg_before, Path("/proc/loadavg").read_text().split()[0]]
    return figures


def rtt_for(proxy: Any, seconds: float, warmup: int) -> list[float]:
    """Sync echo round trips for ``seconds`` (after ``warmup`` untimed ones), as ``foundation.py`` times them."""
    rtts = sync_rtt_samples(proxy, 100, warmup)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rtts.extend(sync_rtt_samples(proxy, 100, 0))
    return rtts


def us(seconds: float) -> float:
    return round(seconds * 1e6, 1)


if __name__ == "__main__":
    main("Sync round trips with and without a /metrics scraper", run)
