"""`omniplus bench chunks`: models larger than one circuit (issue 11 item 4) — gas and prover time
per parameter as d grows, next to PlainMarket's per-parameter cost.

Per model size d: K = ceil(d / d_chunk) chunks of one (N, d_chunk, k, B) circuit (one cached
development setup for all), N Gaussian updates clipped chunk by chunk (per-layer clipping,
ml.updates.quantize_chunked), K real proofs by the single prover (omniplus.api.prove_chunks;
the network path is not chunked yet), a 2-of-3
committee's signatures, and ONE submitChunkedBatch on anvil whose gasUsed is the row's gas.
The anvil runs with a high block gas limit so a large batch is measured, not refused; the row says
when it would not fit a 30M-gas block.

PlainMarket (OmniLytics) is measured for real at small d (--plain-dims), one full session of R
rounds each; its per-batch gas is linear in d (every coordinate is uploaded, stored and summed
on-chain), so the large-d figure is the straight line through the measured points, and the row says
it is extrapolated.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from typing import Any

from omniplus.bench.common import Column, Row, add_output_arguments, int_list, log, report

COLUMNS = [
    Column("d", "d"),
    Column("K", "K"),
    Column("N", "N"),
    Column("d_chunk", "d_chunk"),
    Column("constraints", "constraints/chunk"),
    Column("prove_s", "prove s", "{:.1f}"),
    Column("prove_ms_per_param", "prove ms/param", "{:.3f}"),
    Column("gas", "gas (one tx)", "{:,}"),
    Column("gas_per_param", "gas/param", "{:.1f}"),
    Column("plain_gas_per_param", "Plain gas/param", "{:.1f}"),
    Column("plain_over_rollup", "Plain/Rollup", "{:.1f}"),
    Column("fits_30m", "fits 30M"),
    Column("load1", "load 1m", "{:.2f}"),
]
SERVER_KEYS = [("0x" + f"{j:064x}") for j in (0xC0FFEE01, 0xC0FFEE02, 0xC0FFEE03)]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dims", type=int_list, default=[10_000, 100_000], help="model sizes d (default 10000,100000)")
    p.add_argument("--d-chunk", type=int, default=2500, help="coordinates per chunk circuit (default 2500)")
    p.add_argument("--batch", type=int, default=2, help="N DOs per batch (default 2)")
    p.add_argument("--bits", type=int, default=8, help="k (default 8)")
    p.add_argument("--backend", choices=("snarkjs", "native", "circom"), default="snarkjs")
    p.add_argument("--jobs", type=int, default=1, help="chunks proven at once (processes; default 1)")
    p.add_argument("--plain-dims", type=int_list, default=[250, 500],
                   help="d at which PlainMarket is measured (default 250,500; larger d is extrapolated)")
    p.add_argument("--plain-rounds", type=int, default=2, help="R of each PlainMarket session (default 2)")
    add_output_arguments(p)


def chunk_params(args: argparse.Namespace) -> Any:
    from omniplus.circuits.params import CircuitParams

    k = args.bits
    return CircuitParams(args.batch, args.d_chunk, k, args.d_chunk << (2 * k - 4)).check()


def per_chunk_clipped(p: Any, d: int, *, seed: int) -> list[int]:
    """A DO's d-parameter update as the market makes it: Gaussian, clipped chunk by chunk to the
    chunk circuit's bound (ml.updates.quantize_chunked), quantised; flattened back to d values."""
    import math

    import torch

    from omniplus.ml.updates import QuantSpec, quantize_chunked

    target = math.sqrt(p.norm_bound) - math.sqrt(p.dims) - 1
    spec = QuantSpec(clip=1.0, target=target, bits=p.bits, dims=p.dims)
    assert spec.norm_bound <= p.norm_bound
    update = torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return [v for chunk in quantize_chunked(update, spec, seed) for v in chunk][:d]


def plain_per_param(dims: list[int], n: int, rounds: int) -> tuple[float, float, list[Row]]:
    """(intercept, slope) of PlainMarket's per-batch gas in d, from real sessions at `dims`."""
    from omniplus.bench.gas import plain_session_gas

    pts = []
    for d in dims:
        log(f"[chunks] PlainMarket d={d}, N={n}, R={rounds}")
        pts.append((d, plain_session_gas(d, n, rounds)["per_batch_gas"]))
    if len(pts) == 1:
        return 0.0, pts[0][1] / pts[0][0], []
    (d0, g0), (d1, g1) = pts[0], pts[-1]
    slope = (g1 - g0) / (d1 - d0)
    return g0 - slope * d0, slope, [{"plain_d": d, "plain_per_batch_gas": g} for d, g in pts]


def measure(args: argparse.Namespace) -> list[Row]:
    from eth_account import Account

    from omniplus.api import prove_chunks
    from omniplus.contracts.chain import Anvil
    from omniplus.contracts.committee import sign_batch
    from omniplus.contracts.rollup import Committee, RollupMarket, TaskParams
    from omniplus.contracts.verifier import deploy_verifier
    from omniplus.prover.chunks import n_chunks, split_rows
    from omniplus.prover.setup_cache import cached_setup

    p = chunk_params(args)
    setup, _cached = cached_setup(p, lambda m: log(f"[chunks] setup: {m}"))
    constraints = setup.manifest.get("n_constraints")
    intercept, slope, plain_pts = plain_per_param(args.plain_dims, p.batch, args.plain_rounds)
    committee = Committee(tuple(Account.from_key(k).address for k in SERVER_KEYS),
                          tuple(bytes([j]) * 32 for j in (1, 2, 3)), 2)
    rows: list[Row] = []
    rng = random.Random(7)
    for d in args.dims:
        k = n_chunks(d, p.dims)
        with Anvil(accounts=p.batch + 2, gas_limit=1_000_000_000) as node:
            w3, key = node.w3, node.keys[0]
            v = deploy_verifier(w3, key, setup.path)
            deadline = int(w3.eth.get_block("latest")["timestamp"]) + 86400
            task = TaskParams.from_circuit(p, reward=10**12, batches=1, deadline=deadline, min_batch=2, chunks=k)
            m = RollupMarket.deploy(w3, key, v.address, task, committee=committee)
            dos = node.keys[1:1 + p.batch]
            for dk in dos:
                m.register(dk)
            payees = [Account.from_key(dk).address for dk in dos]
            # one update for every DO: they agree, so every payee's score is positive (LowScore otherwise)
            seed = rng.randrange(1 << 30)
            rows_q = [per_chunk_clipped(p, d, seed=seed) for _ in dos]
            log(f"[chunks] d={d}: proving K={k} chunks of {p.dims} ({args.backend}, jobs={args.jobs})")
            t0 = time.perf_counter()
            out = prove_chunks(setup.path, split_rows(rows_q, p.dims), m.binding_context(payees), args.backend,
                               jobs=args.jobs)
            prove_s = time.perf_counter() - t0
            proofs, words = [c.proof for c in out], [c.words for c in out]
            parts = [c.scores for c in out]
            digest = m.chunked_digest(proofs, words, payees, parts)
            rec = m.submit_chunked_batch(node.keys[-1], proofs, words, payees, parts,
                                         [sign_batch(digest, sk) for sk in SERVER_KEYS[:2]])
            gas = int(rec["gasUsed"])
        plain = intercept + slope * d
        extrapolated = d > max(args.plain_dims)
        rows.append({
            "d": d, "K": k, "N": p.batch, "d_chunk": p.dims, "k": p.bits, "B_chunk": p.norm_bound,
            "constraints": constraints, "prove_s": prove_s, "prove_s_per_chunk": prove_s / k,
            "prove_ms_per_param": 1000 * prove_s / d, "gas": gas, "gas_per_param": gas / d,
            "plain_gas_per_param": plain / d, "plain_per_batch_gas": round(plain),
            "plain_extrapolated": extrapolated, "plain_over_rollup": plain / gas, "fits_30m": gas <= 30_000_000,
            "backend": args.backend, "jobs": args.jobs, "load1": os.getloadavg()[0],
        })
        log(f"[chunks] d={d}: {prove_s:.1f}s proving, {gas:,} gas ({gas / d:.1f}/param), load "
            f"{rows[-1]['load1']:.2f}")
    for r in rows:
        r["plain_points"] = ";".join(f"{q['plain_d']}:{q['plain_per_batch_gas']}" for q in plain_pts)
    return rows


def run(args: argparse.Namespace) -> int:
    rows = measure(args)
    notes = [
        f"one circuit per chunk (N={args.batch}, d_chunk={args.d_chunk}, k={args.bits}, B = d_chunk·2^(2k−4)); "
        "every chunk proven by the single prover, all chunks verified in ONE submitChunkedBatch",
        "PlainMarket per batch measured at d = " + ", ".join(map(str, args.plain_dims))
        + f" (R={args.plain_rounds}: total session gas / R) and extrapolated linearly in d beyond that "
        "(its uploads, storage and on-chain sums are per coordinate)",
        "gas per parameter ≈ 7.2k per packed word / c values per word + the verifier's ≈ 207k per chunk / d_chunk; "
        "'fits 30M' says whether the one transaction fits a 30M-gas block",
        f"{os.cpu_count()} cores, shared with other work: the load average is printed per row",
    ]

    def draw(fig: Any) -> None:
        a1, a2 = fig.subplots(1, 2)
        ds = [r["d"] for r in rows]
        a1.plot(ds, [r["gas_per_param"] for r in rows], "o-", label="RollupMarket chunked (measured)")
        a1.plot(ds, [r["plain_gas_per_param"] for r in rows], "s--", label="PlainMarket (linear in d)")
        a1.set_xscale("log")
        a1.set_yscale("log")
        a1.set_xlabel("model parameters d")
        a1.set_ylabel("gas per parameter per batch")
        a1.legend()
        a2.plot(ds, [r["prove_ms_per_param"] for r in rows], "o-")
        a2.set_xscale("log")
        a2.set_xlabel("model parameters d")
        a2.set_ylabel("prover ms per parameter")

    return report(args, "chunks", rows, COLUMNS, notes, draw)
