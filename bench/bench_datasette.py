"""Print how fast `tracker serve` answers its pages and canned queries, and how fast `tracker export` runs.

    python bench/bench_datasette.py [DB_PATH]

Without DB_PATH it builds the test database (tests/sample_db.py: the 9,481 bundled real papers with
keyword tags) in a temporary folder. Datasette runs as a real process on a loopback port; each
URL is fetched once to warm up, then 5 times, and the median is printed.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

PARAMS = {
    "tag_above_score": "?tag=M-CoT&min_score=0.6",
    "search_with_tags": "?q=hallucination",
    "tag_feed": "?tag=M-CoT",
}


def timed(client: httpx.Client, url: str, runs: int = 5) -> tuple[float, int]:
    client.get(url)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, response.status_code


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-datasette-"))
    if len(sys.argv) > 1:
        db = Path(sys.argv[1])
    else:
        from sample_db import build_sample_db

        start = time.perf_counter()
        db = build_sample_db(tmp / "papers.db")
        print(f"built {db} in {time.perf_counter() - start:.1f} s")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "tracker", "serve", str(db), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/{db.stem}"
    try:
        started = time.perf_counter()
        while True:
            try:
                httpx.get(base, timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        print(f"datasette answered {time.perf_counter() - started:.1f} s after `tracker serve` started")
        queries = yaml.safe_load((ROOT / "db" / "metadata.yml").read_text())["databases"]["tracker"][
            "queries"
        ]
        urls = [
            "papers",
            "papers?_search=multimodal+reasoning",
            "papers?_facet_array=tags&tags__arraycontains=M-CoT",
        ]
        urls += [f"{name}{PARAMS.get(name, '')}" for name in queries]
        urls.append("tag_feed.atom?tag=evaluation")
        print(f"{'page':<58} {'median ms':>9}  status")
        with httpx.Client(base_url=base + "/", timeout=60) as client:
            for url in urls:
                ms, status = timed(client, url)
                print(f"{url:<58} {ms:>9.1f}  {status}")
    finally:
        server.terminate()
        server.wait()
    for fmt in ("jsonl", "csv", "bibtex", "markdown"):
        start = time.perf_counter()
        out = tmp / f"export.{fmt}"
        subprocess.run(
            [sys.executable, "-m", "tracker", "export", str(db), "--format", fmt, "--out", str(out)],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        print(
            f"export --format {fmt:<9} {time.perf_counter() - start:6.2f} s  {out.stat().st_size / 1e6:6.1f} MB"
        )
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
