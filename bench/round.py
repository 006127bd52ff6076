"""`omniplus bench round`: where the time of one market round goes (issue 11 item 5).

One round on a local devnet (anvil, three `omniplus server` processes over mutual TLS, the
coordinator run in this process so its phase boundaries are visible): N DOs train with the ML
roles (omniplus.ml.roles.DataOwner.train_update, the market's MLP on digits), share to the
servers, the servers validate on shares, open the aggregate, prove jointly, verify and sign, and
the coordinator verifies, collects the signatures and submits.

How each figure is taken (the cleaner of the two routes for each side):
- wall: perf_counter around each step here; for the phases inside the servers' batch round
  (aggregate, proof, verify, sign) the servers' own clocks (servers/mpc_engine.py reports
  {phase: {wall_s, cpu_s}} in the round result), the slowest server's wall per phase;
- CPU of the servers: /proc/<pid>/stat utime+stime of each server process and its live children
  (the snarkjs node worker), sampled here at step boundaries (omniplus.core.cpu.tree_cpu_s);
  inside the batch round, the servers' own per-phase samples (same function), summed over servers;
  what the round cost beyond the reported phases is the "round overhead" row;
- CPU here (DOs + coordinator: this process, torch threads included): time.process_time;
- CPU of the chain: anvil's process, sampled like the servers;
- load: the 1-minute load average at the end of each step (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from omniplus.bench.common import Column, Row, add_output_arguments, log, report

COLUMNS = [
    Column("phase", "phase"),
    Column("where", "where"),
    Column("wall_s", "wall s", "{:.3f}"),
    Column("cpu_here_s", "CPU DO/coord s", "{:.3f}"),
    Column("cpu_servers_s", "CPU servers s", "{:.3f}"),
    Column("cpu_chain_s", "CPU anvil s", "{:.3f}"),
    Column("load1", "load 1m", "{:.2f}"),
]
SERVER_PHASES = (("recheck", "re-check before opening"), ("screening", "contribution screening"),
                 ("aggregate", "aggregate opening"), ("proof", "proof (joint Groth16)"),
                 ("verify", "local verify"), ("sign", "sign digest"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dos", type=int, default=3, help="N: DOs in the round (= the batch size; default 3)")
    p.add_argument("--hidden", type=int, default=8,
                   help="hidden units of the MLP; the traded first layer has 65·hidden values (default 8: d=520)")
    p.add_argument("--bits", type=int, default=6, help="k (default 6)")
    p.add_argument("--norm-bound", type=int, default=7535, help="B (default 7535, the demo's)")
    p.add_argument("--epochs", type=int, default=None, help="DO epochs (default: the market's)")
    p.add_argument("--backend", choices=("native", "snarkjs"), default="snarkjs",
                   help="the servers' prover engine (default snarkjs)")
    p.add_argument("--workdir", type=Path, default=None, help="keep the devnet's files here (default: a temp dir)")
    add_output_arguments(p)


def _cpu(pids: list[int]) -> float:
    from omniplus.core.cpu import tree_cpu_s

    return sum(tree_cpu_s(p) for p in pids)


def measure_round(args: argparse.Namespace) -> list[Row]:
    """Run one round and return the rows (the last one is the measured total)."""
    from omniplus.devnet import Devnet, DevnetOptions
    from omniplus.market_run import submit_update
    from omniplus.ml.config import MarketConfig
    from omniplus.ml.model import check_public, public_params, public_size
    from omniplus.ml.roles import DataOwner, prepare_data, pretrain
    from omniplus.ml.updates import flatten
    from omniplus.servers.coordinator import Coordinator, load_coordinator_config

    n = args.dos
    cfg = MarketConfig(dos=n, batch=n, malicious=(), rounds=1, hidden=(args.hidden,), bits=args.bits, public=("fc1",),
                       norm_bound=args.norm_bound, backend=args.backend, plain_gas=False)
    if args.epochs is not None:
        cfg.do_epochs = args.epochs
    cfg.check()
    mo_data, _test, partitions = prepare_data(cfg)
    model = pretrain(cfg, mo_data)
    layers = check_public(model, cfg.public)
    spec = cfg.spec(public_size(model, layers))
    w = flatten(public_params(model, layers))
    opts = DevnetOptions(servers=3, dos=n, invalid=0, batch=n, dims=spec.dims, bits=cfg.bits,
                         norm_bound=cfg.norm_bound, backend=cfg.backend, batches=1, min_batch=min(2, n),
                         batch_wait=0.01)
    with tempfile.TemporaryDirectory(prefix="omniplus-round-") as tmp:
        root = Path(args.workdir) if args.workdir else Path(tmp)
        with Devnet(root / "net", opts, progress=log) as net:
            net.start()
            servers = [p.pid for p in net.server_procs.values()]
            chain = [net.anvil.proc.pid]
            dos = [DataOwner(i, a.address, a.key, partitions[i]) for i, a in enumerate(net.anvil.accounts[1:1 + n])]
            rows: list[Row] = []
            mark = {"wall": time.perf_counter(), "here": time.process_time(), "servers": _cpu(servers),
                    "chain": _cpu(chain)}
            start = dict(mark)

            def step(phase: str, where: str) -> Row:
                now = {"wall": time.perf_counter(), "here": time.process_time(), "servers": _cpu(servers),
                       "chain": _cpu(chain)}
                row = {"phase": phase, "where": where, "wall_s": now["wall"] - mark["wall"],
                       "cpu_here_s": now["here"] - mark["here"], "cpu_servers_s": now["servers"] - mark["servers"],
                       "cpu_chain_s": now["chain"] - mark["chain"], "load1": os.getloadavg()[0]}
                mark.update(now)
                return row

            log(f"[round] {n} DOs train (d={spec.dims}, {cfg.do_epochs} epochs each)")
            updates = []
            for do in dos:
                upd = do.train_update(w, model.arch, layers, cfg)
                updates.append(do.quantised(upd, spec, seed=do.index))
            rows.append(step("train", "DOs"))
            log("[round] DOs register and share")
            for do, row in zip(dos, updates, strict=True):
                net.market.register(do.key)
                submit_update(net, do, row, model_version=0)
            rows.append(step("share", "DOs -> servers"))

            coord = Coordinator(load_coordinator_config(net.write_coordinator_config(poll=0.05)),
                                log=lambda *a, **k: None)
            try:
                log("[round] validation on shares")
                todo, valid, _rejected = coord.classify()
                verdicts = coord.validate(todo) if todo else {}
                valid += [d for d, why in verdicts.items() if why is None]
                rows.append(step("validate", "servers"))
                chosen = sorted(valid)[:n]
                log(f"[round] batch of {len(chosen)}: aggregate, joint proof, verify, sign, submit")
                batch = coord.prove_and_submit(chosen)
                whole = step("batch", "")
            finally:
                coord.close()
            total = {"phase": "total (measured)", "where": "", "wall_s": mark["wall"] - start["wall"],
                     "cpu_here_s": mark["here"] - start["here"], "cpu_servers_s": mark["servers"] - start["servers"],
                     "cpu_chain_s": mark["chain"] - start["chain"], "load1": os.getloadavg()[0]}
    rows += batch_rows(batch, whole)
    for r in rows:
        r.update(n=n, d=spec.dims, k=cfg.bits, backend=cfg.backend)
    total.update(n=n, d=spec.dims, k=cfg.bits, backend=cfg.backend, gas_used=batch.gas_used)
    return [*rows, total]


def batch_rows(batch: Any, whole: Row) -> list[Row]:
    """The batch step split into the servers' phases and the coordinator's (see the docstring)."""
    phases: dict[str, dict[str, dict[str, float]]] = batch.server_phases
    sec, cpu = batch.seconds, batch.cpu_s
    rows: list[Row] = []
    reported_cpu = 0.0
    for key, title in SERVER_PHASES:
        walls = [float(p.get(key, {}).get("wall_s", 0.0)) for p in phases.values()]
        cpus = [float(p.get(key, {}).get("cpu_s", 0.0)) for p in phases.values()]
        reported_cpu += sum(cpus)
        rows.append({"phase": title, "where": "servers", "wall_s": max(walls, default=0.0), "cpu_here_s": 0.0,
                     "cpu_servers_s": sum(cpus), "cpu_chain_s": 0.0, "load1": whole["load1"]})
    slowest = max((sum(float(v.get("wall_s", 0.0)) for v in p.values()) for p in phases.values()), default=0.0)
    rows.append({"phase": "round overhead", "where": "coordinator <-> servers (RPC, polling, agreement)",
                 "wall_s": float(sec["prove"]) - slowest, "cpu_here_s": float(cpu["prove"]),
                 "cpu_servers_s": None, "cpu_chain_s": None, "load1": whole["load1"]})
    coord_wall = float(sec["prove"]) + float(sec["verify"]) + float(sec["signatures"]) + float(sec["submit"])
    rows += [
        {"phase": "local verify", "where": "coordinator", "wall_s": float(sec["verify"]),
         "cpu_here_s": float(cpu["verify"]), "load1": whole["load1"]},
        {"phase": "collect signatures", "where": "coordinator", "wall_s": float(sec["signatures"]),
         "cpu_here_s": float(cpu["signatures"]), "load1": whole["load1"]},
        {"phase": "submit", "where": "coordinator -> chain (eth_call, tx)", "wall_s": float(sec["submit"]),
         "cpu_here_s": float(cpu["submit"]), "cpu_chain_s": whole["cpu_chain_s"], "load1": whole["load1"]},
    ]
    # What the servers spent in the batch step beyond their reported phases, and the batch step's
    # own bookkeeping (task checks, digest) beyond the coordinator's phases, go to the overhead row.
    rows[len(SERVER_PHASES)]["cpu_servers_s"] = whole["cpu_servers_s"] - reported_cpu
    rows[len(SERVER_PHASES)]["wall_s"] += whole["wall_s"] - coord_wall
    return rows


def run(args: argparse.Namespace) -> int:
    rows = measure_round(args)
    total = rows[-1]
    parts = sum(r["wall_s"] for r in rows[:-1])
    notes = [
        f"one round: N={total['n']} DOs, d={total['d']}, k={total['k']}, backend {total['backend']}, "
        f"3 servers (t=1) and anvil on this machine ({os.cpu_count()} cores, shared); gas {total['gas_used']:,}",
        f"phases sum to {parts:.2f} s of {total['wall_s']:.2f} s measured; server rows: slowest server's wall, "
        "CPU summed over the 3 servers (each server's process and its node worker)",
        "'round overhead' = the batch round as the coordinator saw it minus the slowest server's phases",
    ]

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        body = rows[:-1]
        names = [r["phase"] for r in body][::-1]
        y = list(range(len(names)))
        wall = [max(0.0, r["wall_s"]) for r in body][::-1]
        cpu = [sum(max(0.0, r.get(k) or 0.0) for k in ("cpu_here_s", "cpu_servers_s", "cpu_chain_s"))
               for r in body][::-1]
        ax.barh([v + 0.2 for v in y], wall, height=0.4, label="wall s")
        ax.barh([v - 0.2 for v in y], cpu, height=0.4, label="CPU s (all processes)")
        ax.set_yticks(y, names)
        ax.set_xlabel("seconds")
        ax.set_title(f"one market round, N={total['n']}, d={total['d']} (load {total['load1']:.1f})")
        ax.legend()

    return report(args, "round", rows, COLUMNS, notes, draw)
