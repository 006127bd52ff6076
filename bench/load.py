"""`omniplus bench load`: N concurrent DOs submitting to a 3-server devnet (real anvil, real server
processes over TLS, registration checked on-chain by the servers' event registry).

Each DO registers on RollupMarket, then (outside the timing) computes its witness block, Shamir-
shares it and signs one request per server, as `omniplus do submit` does. At a common start all
DOs send at once, each over its own TLS channels, share j to server j. Per DO the latency is its
first send to its last reply; throughput is DOs whose every share was stored per second of wall
time. Server RSS is read from /proc after the run (VmRSS now, VmHWM the peak). The load average
of the machine is part of the row: the figure means little without it on a shared host.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from omniplus.bench.common import Column, add_output_arguments, log, report

COLUMNS = [
    Column("dos", "DOs"),
    Column("servers", "servers"),
    Column("wall_s", "wall s", "{:.2f}"),
    Column("dos_per_s", "DOs/s", "{:.1f}"),
    Column("requests_per_s", "req/s", "{:.1f}"),
    Column("p50_ms", "p50 ms", "{:.0f}"),
    Column("p99_ms", "p99 ms", "{:.0f}"),
    Column("max_ms", "max ms", "{:.0f}"),
    Column("stored", "stored"),
    Column("lost", "lost"),
    Column("rss_mb_max", "server RSS MB", "{:.0f}"),
    Column("peak_rss_mb_max", "peak RSS MB", "{:.0f}"),
    Column("loadavg_1m", "load 1m", "{:.2f}"),
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dos", type=int, default=200, help="concurrent DOs (default 200)")
    p.add_argument("--servers", type=int, default=3, help="servers n (t = 1; default 3)")
    p.add_argument("--seed", type=int, default=1)
    add_output_arguments(p)


def _rss_mb(pid: int) -> tuple[float, float]:
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            fields[k] = int(v.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def measure(n_dos: int, n_servers: int, seed: int, root: Path) -> dict[str, Any]:
    from omniplus.devnet import Devnet, DevnetOptions
    from omniplus.servers.client import TaskRef, build_request, send, share_block
    from omniplus.servers.data_owner import update_block

    net = Devnet(root, DevnetOptions(servers=n_servers, dos=n_dos, invalid=0, seed=seed),
                 progress=lambda m: log(m))
    try:
        net.start()
        dos = net.make_dos()
        log(f"[load] registering {n_dos} DOs on-chain")
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda d: net.market.register(d.key), dos))
        task = TaskRef.parse(net.market.address, net.anvil.chain_id)
        servers = [f"127.0.0.1:{p[0]}" for p in net.ports]
        pins = net.pins
        log(f"[load] sharing and signing {n_dos} × {n_servers} requests (not timed)")
        reqs = []
        for d in dos:
            wires, values = update_block(net.setup, net.layout, d.row)
            per = share_block(values, 1, n_servers)
            reqs.append([build_request(d.key, task, j, n_servers, 1, wires, per[j]) for j in per])
        time.sleep(2.5)  # let the servers' registry caches see the registrations
        start = threading.Barrier(n_dos)
        lat: list[float] = [0.0] * n_dos
        ok: list[bool] = [False] * n_dos
        spans: list[tuple[float, float]] = [(0.0, 0.0)] * n_dos

        def one(i: int) -> None:
            start.wait()
            t0 = time.monotonic()
            outs = [send(servers[j], j + 1, r, pins, timeout=60) for j, r in enumerate(reqs[i])]
            t1 = time.monotonic()
            lat[i], ok[i], spans[i] = t1 - t0, all(o.accepted for o in outs), (t0, t1)

        log(f"[load] {n_dos} DOs submitting at once")
        load0 = os.getloadavg()[0]
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n_dos)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = max(s[1] for s in spans) - min(s[0] for s in spans)
        rss = [_rss_mb(p.pid) for p in net.server_procs.values()]
        stored = sum(ok)
        return {
            "dos": n_dos,
            "servers": n_servers,
            "wall_s": round(wall, 3),
            "dos_per_s": round(stored / wall, 2),
            "requests_per_s": round(stored * n_servers / wall, 2),
            "p50_ms": round(1000 * _pct(lat, 0.50), 1),
            "p99_ms": round(1000 * _pct(lat, 0.99), 1),
            "max_ms": round(1000 * max(lat), 1),
            "stored": stored,
            "lost": n_dos - stored,
            "rss_mb_max": round(max(r[0] for r in rss), 1),
            "peak_rss_mb_max": round(max(r[1] for r in rss), 1),
            "rss_mb": ";".join(f"{r[0]:.0f}" for r in rss),
            "loadavg_1m": round(max(load0, os.getloadavg()[0]), 2),
            "cpus": os.cpu_count(),
        }
    finally:
        net.stop()


def run(args: argparse.Namespace) -> int:
    if args.dos < 1 or args.servers < 3:
        log("--dos must be ≥ 1 and --servers ≥ 3")
        return 2
    with tempfile.TemporaryDirectory(prefix="omniplus-bench-load-") as tmp:
        row = measure(args.dos, args.servers, args.seed, Path(tmp))
    notes = [f"{row['dos']} DOs sent share j to server j at once, each over its own TLS channels; "
             "latency = a DO's 3 Submit replies, sharing and signing not timed",
             f"load average (1 min) {row['loadavg_1m']} on {row['cpus']} CPUs (shared machine)"]
    return report(args, "load", [row], COLUMNS, notes)


if __name__ == "__main__":  # python -m bench.load ...
    ap = argparse.ArgumentParser(prog="python -m bench.load")
    add_arguments(ap)
    sys.exit(run(ap.parse_args()))
