"""Gas benchmark (issue 3 §4): PlainMarket (OmniLytics on-chain baseline) vs RollupMarket (one
Groth16 proof per batch) vs a per-DO-proof rollup (the same RollupMarket, one proof per DO), all on
one anvil in one run.

Every number is the gasUsed of a real transaction. RollupMarket rows use real proofs for the real
circuit (a trusted setup per (N, d), from the one setup cache, omniplus.prover.setup_cache); sizes whose circuit
exceeds --max-constraints are reported as skipped (too large for this machine) rather than faked.
Per-DO-proof rows prove at most `per_do_sample` batches for real; every per-DO batch has the same
shape (1 payee, M words), so the remaining batches are counted at the measured mean and the row
says how many were extrapolated.

Categories (gas): register (DO registrations), pubkey (PlainMarket's PubKeyInteract),
upload_aggregate (masked uploads summed on-chain), outlier_suppression (on-chain multi-Krum),
verify (submitBatch: binding + Groth16 verification + crediting), payment (withdrawals + the MO's
finish). `total_gas` is their sum; deployment (and PlainMarket's on-chain copy of the public model W)
is reported separately in `deploy_gas` and is not in the total.
"""

from __future__ import annotations

import csv
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from omniplus.circuits.params import CircuitParams
from omniplus.contracts.chain import Anvil
from omniplus.contracts.plain import MaskingKey, PlainMarket, fixed_point, masked_vector, pairwise_mask
from omniplus.contracts.rollup import RollupMarket, TaskParams
from omniplus.contracts.verifier import deploy_verifier
from omniplus.core.resources import BENCH_RESULTS, cache_dir

DIMS = (250, 5701)
BATCHES = (2, 4, 8, 16, 32)
ROUNDS = 8
MU = (1, 4)
BITS = 8
REWARD = 10**15
CATEGORIES = ("register", "pubkey", "upload_aggregate", "outlier_suppression", "verify", "payment")
FIELDS = ("contract", "N", "d", "R", *CATEGORIES, "total_gas", "deploy_gas", "txs", "per_batch_gas",
          "target_per_batch", "meets_target", "proofs", "note")


def _gas(receipts: Sequence[dict] | dict) -> int:
    if isinstance(receipts, dict):
        return receipts["gasUsed"]
    return sum(r["gasUsed"] for r in receipts)


def _row(contract: str, N: int, d: int, R: int) -> dict:
    return {"contract": contract, "N": N, "d": d, "R": R, **{c: 0 for c in CATEGORIES}, "total_gas": 0,
            "deploy_gas": 0, "txs": 0, "per_batch_gas": None, "target_per_batch": None,
            "meets_target": None, "proofs": "", "note": ""}


def _finish_row(row: dict) -> dict:
    row["total_gas"] = sum(row[c] for c in CATEGORIES)
    return row


# ------------------------------------------------------------------------------ PlainMarket
def plain_row(node: Anvil, N: int, d: int, R: int = ROUNDS, mu: tuple[int, int] = MU,
              seed: int = 0) -> dict:
    """One full SecModelUpdate session: N DOs per round, R rounds, mu·R rounds Byzantine (random)."""
    rng = random.Random(seed)
    w3, mo = node.w3, node.keys[0]
    row = _row("PlainMarket", N, d, R)
    pm = PlainMarket.deploy(w3, mo, d, 10**18)
    deploy_gas = _gas(pm.deploy_receipt) + _gas(pm.load_model(mo, fixed_point([rng.uniform(-1, 1)
                                                                                 for _ in range(d)])))
    deploy_gas += _gas(pm.start(mo, rounds=R, per_round=N, mu=mu))
    txs = 0
    truth = [rng.gauss(0, 0.05) for _ in range(d)]
    n_byz = mu[0] * R // mu[1]
    byzantine = set(rng.sample(range(R), n_byz))
    dos = node.accounts[1:1 + N * R]
    for r in range(R):
        members = dos[r * N:(r + 1) * N]
        row["register"] += _gas([pm.register(a.key) for a in members])
        mkeys = [MaskingKey() for _ in members]
        row["pubkey"] += _gas([pm.post_public_key(a.key, mk.public_bytes) for a, mk in zip(members, mkeys,
                                                                                          strict=True)])
        pks = [mk.public_bytes for mk in mkeys]
        for i, (a, mk) in enumerate(zip(members, mkeys, strict=True)):
            if r in byzantine:
                vec = fixed_point([rng.uniform(-1, 1) for _ in range(d)])
            else:
                vec = fixed_point([t + rng.gauss(0, 0.01) for t in truth])
            rcs = pm.upload(a.key, masked_vector(vec, pairwise_mask(i, mk, pks, r, d)))
            row["upload_aggregate"] += _gas(rcs)
            txs += len(rcs)
        txs += 2 * N
    rcs = pm.suppress_outliers(mo, chunks_per_tx=4)
    row["outlier_suppression"] = _gas(rcs)
    txs += len(rcs)
    selected = pm.selected_rounds()
    for r in selected:
        for a in dos[r * N:(r + 1) * N]:
            row["payment"] += _gas(pm.withdraw(a.key))
            txs += 1
    row["payment"] += _gas(pm.finish(mo))
    row["txs"] = txs + 1
    row["deploy_gas"] = deploy_gas
    honest = not set(selected) & byzantine
    row["note"] = f"Krum selected rounds {sorted(selected)}; Byzantine {sorted(byzantine)}; " + (
        "all selected honest" if honest else "A BYZANTINE ROUND WAS SELECTED")
    return _finish_row(row)


# ------------------------------------------------------------------------------ RollupMarket
def estimate_constraints(params: CircuitParams) -> int:
    """Rough size of the batch circuit: per DO d·(k+3) + norm bits, plus one per packed word."""
    return params.batch * (params.dims * (params.bits + 3) + params.norm_bits) + params.n_words + params.n_score_words


def bench_params(N: int, d: int, bits: int = BITS) -> CircuitParams:
    """B = d·2^(2k−2): every in-range row is valid, so random rows always prove."""
    return CircuitParams(batch=N, dims=d, bits=bits, norm_bound=d << (2 * bits - 2)).check()


def cached_setup(params: CircuitParams, log: Callable[[str], None]):
    """A setup per (N, d, k) from the one development-setup cache (omniplus.prover.setup_cache)."""
    from omniplus.prover.setup_cache import cached_setup as cached

    t = time.perf_counter()
    setup, hit = cached(params, log)
    if not hit:
        log(f"[gas]   setup for N={params.batch} d={params.dims} done in {time.perf_counter() - t:.0f}s")
    return setup


class _Prover:
    """Real proofs with the snarkjs backend (one long-lived node worker per zkey)."""

    def __init__(self) -> None:
        from omniplus.prover.backends.base import get_backend

        self.backend = get_backend("snarkjs")

    def prove(self, setup, market: RollupMarket, payees: list[str], rows: list[list[int]], work: Path):
        from omniplus.prover.backends.base import ProveJob
        from omniplus.prover.binding import public_inputs
        from omniplus.prover.witness import circuit_inputs, full_witness

        ctx = market.binding_context(payees)
        words, signals = public_inputs(setup.params, ctx, rows)
        job = ProveJob(zkey=setup.zkey, wasm=setup.wasm, witness=full_witness(setup, rows, signals),
                       input_json=circuit_inputs(setup.params, rows, signals), workdir=work)
        proof, public = self.backend.prove(job)
        if [int(x) for x in public] != signals:
            raise RuntimeError("the proof's public signals are not [ctx, W_0..W_(M-1), S_0..S_(K-1)]")
        return proof, words


# The bench's server committee: n = 3 signing keys, t + 1 = 2 signatures per batch (PROTOCOL.md v2).
BENCH_COMMITTEE_KEYS = tuple("0x" + bytes([j]).hex() * 32 for j in (0x51, 0x52, 0x53))
BENCH_THRESHOLD = 2


def bench_committee():
    from eth_account import Account

    from omniplus.contracts.rollup import Committee

    return Committee(tuple(Account.from_key(k).address for k in BENCH_COMMITTEE_KEYS),
                     tuple(bytes([j]) * 32 for j in (1, 2, 3)), BENCH_THRESHOLD)


def batch_floor(n_words: int, n_payees: int, calldata_gas: int, signatures: int = BENCH_THRESHOLD) -> int:
    """Floor of one submitBatch as issue 9 states it: 222k (a Groth16 verify transaction) + 7.2k per
    public input (pass M+1) + calldata + one fresh storage slot per payee (22.1k) + 3k per ecrecover."""
    return 222_000 + 7_200 * n_words + calldata_gas + 22_100 * n_payees + 3_000 * signatures


def _calldata_gas(words: Sequence[int]) -> int:
    raw = b"".join(int(w).to_bytes(32, "big") for w in words)
    return sum(16 if b else 4 for b in raw)


def _tx_calldata_gas(data: bytes) -> int:
    """EIP-2028 calldata gas of a whole transaction's input."""
    return sum(16 if b else 4 for b in data)


def rollup_row(node: Anvil, N: int, d: int, R: int = ROUNDS, *, per_do: bool = False, prover: _Prover,
               log: Callable[[str], None], per_do_sample: int = 16, seed: int = 0) -> dict:
    """R batches of N DOs (or, per_do, N·R batches of one DO each, each with its own proof)."""
    rng = random.Random(seed)
    w3, mo = node.w3, node.keys[0]
    if per_do:  # RollupMarket requires N_min >= 2: a one-DO batch would publish that DO's update
        row = _row("RollupPerDO", N, d, R)
        row["note"] = "not allowed: N_min >= 2 (a one-DO batch publishes that DO's update on-chain)"
        return row
    circuit_n = N
    params = bench_params(circuit_n, d)
    setup = cached_setup(params, log)
    n_batches = N * R if per_do else R
    row = _row("RollupPerDO" if per_do else "RollupMarket", N, d, R)
    verifier = deploy_verifier(w3, mo, setup.verifier_sol)
    deadline = w3.eth.get_block("latest")["timestamp"] + 10**7
    task = TaskParams.from_circuit(params, reward=REWARD, batches=n_batches, deadline=deadline,
                                   min_batch=min(2, circuit_n))
    m = RollupMarket.deploy(w3, mo, verifier.address, task, committee=bench_committee(), model_hash=b"\x01" * 32,
                            model_uri="bench://model")
    row["deploy_gas"] = _gas(verifier.deploy_receipt) + _gas(m.deploy_receipt)
    dos = node.accounts[1:1 + N * R]
    row["register"] = _gas([m.register(a.key) for a in dos])
    half = 1 << (params.bits - 1)
    measured: list[int] = []
    words = []
    tx_calldata = 0
    work = cache_dir() / "bench_work"
    proved = n_batches if not per_do else min(n_batches, per_do_sample)
    for b in range(proved):
        members = dos[b * circuit_n:(b + 1) * circuit_n]
        # DOs whose updates agree (a common direction plus noise): positive scores, all paid
        base = [rng.randrange(-half // 2, half // 2) for _ in range(d)]
        rows = [[min(half - 1, max(-half, x + rng.randrange(-half // 4, half // 4 + 1))) for x in base]
                for _ in members]
        payees = [a.address for a in members]
        proof, words = prover.prove(setup, m, payees, rows, work)
        from omniplus.contracts.committee import sign_batch
        from omniplus.prover.contribution import scores

        sc = scores(rows)
        digest = m.digest(proof, words, payees, sc)
        sigs = [sign_batch(digest, k) for k in BENCH_COMMITTEE_KEYS[:BENCH_THRESHOLD]]
        rc = m.submit_batch(mo, proof, words, payees, sc, sigs)  # any relayer would do
        data = m.submit_call(proof, words, payees, sc, sigs)._encode_transaction_data()
        tx_calldata = _tx_calldata_gas(bytes.fromhex(str(data).removeprefix("0x")))
        measured.append(_gas(rc))
    extrapolated = n_batches - proved
    mean = sum(measured) / len(measured)
    row["verify"] = sum(measured) + round(mean * extrapolated)
    paid = dos if not extrapolated else dos[:proved * circuit_n]
    withdraw_gas = [_gas(m.withdraw(a.key)) for a in paid]
    row["payment"] = sum(withdraw_gas) + round(sum(withdraw_gas) / len(withdraw_gas)) * (len(dos) - len(paid))
    if extrapolated:
        node.increase_time(10**7 + 1)  # unproved batches: close after the deadline instead
    row["payment"] += _gas(m.finish(mo))
    row["txs"] = len(dos) + n_batches + len(dos) + 1
    row["per_batch_gas"] = round(mean)
    # the floor 222k + 7.2k·(M+1) + calldata + per-payee storage + (t+1)·ecrecover (222k is a whole
    # verify transaction, its 21k base included)
    floor = batch_floor(params.n_words + 1, circuit_n, tx_calldata)
    row["target_per_batch"] = floor
    row["meets_target"] = row["per_batch_gas"] <= round(1.25 * floor)
    row["proofs"] = f"{proved} real" + (f", {extrapolated} extrapolated at the measured mean" if extrapolated
                                        else "")
    row["note"] = (f"M={params.n_words} words (w={params.word_bits}, c={params.per_word}), k={params.bits}; "
                   f"{BENCH_THRESHOLD} of {len(BENCH_COMMITTEE_KEYS)} committee signatures; floor {floor:,} "
                   f"(x{row['per_batch_gas'] / floor:.2f})")
    return _finish_row(row)


# ------------------------------------------------------------------------------ driver
# Defaults sized to finish on this 2-core machine in well under 45 min (quoted in the report of
# issue 14): PlainMarket rows above MAX_PLAIN_VALUES uploaded values (N·R·d) are extrapolated
# linearly in N from the two largest measured N at the same d; --max-plain-values raises it.
MAX_CONSTRAINTS = 240_000  # includes the RollupMarket N=4, d=5701 row (≈228k constraints)
MAX_PLAIN_VALUES = 8 * ROUNDS * 5701  # PlainMarket measured up to N=8 at d=5701 (≈5 min per row)
PER_DO_SAMPLE = 8
QUICK = {"dims": (250,), "batches": (2, 4), "rounds": 4, "per_do_sample": 4}
PLAIN_EXIT_NOTE = ("PlainMarket's exit() lets an MO read one or two rounds' sums and refund everything; "
                   "the paper is silent on it")


def _extrapolate_plain(rows: list[dict], N: int, d: int, R: int, limit: int) -> dict | None:
    """A PlainMarket row for N from the two largest measured N at this d (every category but the
    R-only Krum is per DO, so the fit is linear in N); None if fewer than two were measured."""
    have = sorted((r["N"], r) for r in rows if r["contract"] == "PlainMarket" and r["d"] == d
                  and r["R"] == R and not r.get("extrapolated"))
    if len(have) < 2:
        return None
    (n0, r0), (n1, r1) = have[-2], have[-1]
    row = _row("PlainMarket", N, d, R)
    for key in (*CATEGORIES, "deploy_gas", "txs"):
        row[key] = round(r1[key] + (r1[key] - r0[key]) * (N - n1) / (n1 - n0))
    row["extrapolated"] = True
    row["note"] = (f"extrapolated linearly in N from the measured N={n0}, {n1} (N·R·d = {N * R * d} values > "
                   f"--max-plain-values {limit})")
    return _finish_row(row)


class _RowWriter:
    """Each row goes to the CSV as soon as it is measured, so an interrupted run keeps what it has."""

    def __init__(self, path: Path):
        self.path = path
        self.fh = path.open("w", newline="")
        self.w = csv.DictWriter(self.fh, fieldnames=[*FIELDS, "plain_ratio", "seconds"], extrasaction="ignore")
        self.w.writeheader()
        self.fh.flush()

    def add(self, row: dict) -> None:
        self.w.writerow(row)
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def run_gas_bench(dims: Sequence[int] = DIMS, batches: Sequence[int] = BATCHES, json_out: bool = False, *,
                  rounds: int = ROUNDS, max_constraints: int = MAX_CONSTRAINTS, per_do_sample: int = PER_DO_SAMPLE,
                  max_plain_values: int = MAX_PLAIN_VALUES,
                  contracts: Sequence[str] = ("plain", "rollup", "perdo"), out_dir: Path = BENCH_RESULTS,
                  log: Callable[[str], None] | None = None, progress: bool = True) -> list[dict]:
    """Run every (contract, N, d) on one anvil; print the table (or JSON lines); write CSV and PNG.

    Progress (one step per row) goes to stderr through tqdm; each row is appended to gas.csv as it
    completes, and the file is rewritten with the PlainMarket ratios at the end."""
    import sys

    from tqdm import tqdm

    jobs = [(d, N, kind) for d in dims for N in sorted(batches) for kind in contracts]
    bar = tqdm(total=len(jobs), desc="bench gas", unit="row", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    say = log or (lambda s: bar.write(s, file=sys.stderr))
    rows: list[dict] = []
    n_keys = 1 + max(batches) * rounds + 4
    prover = _Prover() if {"rollup", "perdo"} & set(contracts) else None
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = _RowWriter(out_dir / "gas.csv")

    def done(row: dict, t0: float) -> None:
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        writer.add(row)
        _emit(row, json_out)
        bar.update(1)

    try:
        with Anvil(accounts=n_keys, gas_limit=30_000_000) as node:
            for d, N, kind in jobs:
                bar.set_postfix_str(f"{kind} N={N} d={d}")
                t = time.perf_counter()
                if kind == "plain":
                    row = None
                    if N * rounds * d > max_plain_values:
                        row = _extrapolate_plain(rows, N, d, rounds, max_plain_values)
                    done(row or plain_row(node, N, d, rounds), t)
                    continue
                circuit_n = 1 if kind == "perdo" else N
                est = estimate_constraints(bench_params(circuit_n, d))
                if est > max_constraints:
                    row = _row("RollupPerDO" if kind == "perdo" else "RollupMarket", N, d, rounds)
                    row["total_gas"] = None
                    row["note"] = (f"skipped: ~{est} constraints > --max-constraints "
                                   f"{max_constraints} (too large for this machine)")
                    done(row, t)
                    continue
                row = rollup_row(node, N, d, rounds, per_do=kind == "perdo", prover=prover, log=say,
                                 per_do_sample=per_do_sample)
                done(row, t)
    finally:
        bar.close()
        writer.close()
    _ratios(rows)
    _write_csv(rows, out_dir / "gas.csv")
    _plot(rows, out_dir / "gas.png")
    if not json_out:
        print(format_table(rows))
        if "plain" in contracts:
            print(f"\nNote: {PLAIN_EXIT_NOTE}.")
        print(f"\nCSV: {out_dir / 'gas.csv'}  PNG: {out_dir / 'gas.png'}")
    elif "plain" in contracts:
        print(f"note: {PLAIN_EXIT_NOTE}", file=sys.stderr)
    return rows


def _emit(row: dict, json_out: bool) -> None:
    if json_out:
        print(json.dumps(row), flush=True)


def _ratios(rows: list[dict]) -> None:
    """PlainMarket / RollupMarket (and / per-DO rollup) per (N, d), stored on the rollup rows."""
    plain = {(r["N"], r["d"]): r["total_gas"] for r in rows if r["contract"] == "PlainMarket"}
    for r in rows:
        p = plain.get((r["N"], r["d"]))
        if r["contract"] != "PlainMarket" and p and r["total_gas"]:
            r["plain_ratio"] = round(p / r["total_gas"], 1)


def format_table(rows: list[dict]) -> str:
    cols = ("contract", "N", "d", "R", "register", "pubkey", "upload_aggregate", "outlier_suppression",
            "verify", "payment", "total_gas", "per_batch_gas", "plain_ratio")
    head = ["contract", "N", "d", "R", "register", "pubkey", "upload/agg", "outlier", "verify", "payment",
            "total", "per batch", "plain/x"]
    lines = [[str(r.get(c) if r.get(c) is not None else "-") for c in cols] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    out = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    out += ["  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)) for line in lines]
    notes = [f"{r['contract']} N={r['N']} d={r['d']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(out + [""] + notes)


def _write_csv(rows: list[dict], path: Path) -> None:
    """The final CSV (with ratios), replacing the incremental one atomically."""
    keys = list(FIELDS) + ["plain_ratio", "seconds"]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    os.replace(tmp, path)


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = sorted({r["d"] for r in rows})
    fig, axes = plt.subplots(1, len(dims), figsize=(6 * len(dims), 4.5), squeeze=False)
    for ax, d in zip(axes[0], dims, strict=True):
        for contract in ("PlainMarket", "RollupMarket", "RollupPerDO"):
            pts = sorted((r["N"], r["total_gas"]) for r in rows
                         if r["d"] == d and r["contract"] == contract and r["total_gas"])
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=contract)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("N (DOs per round / batch)")
        ax.set_ylabel("total gas (R = 8)")
        ax.set_title(f"d = {d}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(p) -> None:
    """Flags of `omniplus bench gas` (the verb lives in omniplus/commands/bench.py)."""
    from omniplus.bench.common import add_output_arguments, int_list, str_list

    p.add_argument("--quick", action="store_true",
                   help=f"a few-minute preset: d={QUICK['dims'][0]}, N={','.join(map(str, QUICK['batches']))}, "
                        f"R={QUICK['rounds']}, every contract (explicit flags still override)")
    p.add_argument("--dims", type=int_list, default=None, help="d values (default 250,5701)")
    p.add_argument("--batch", type=int_list, default=None, help="N values (default 2,4,8,16,32)")
    p.add_argument("--rounds", type=int, default=None, help=f"R rounds / batches (default {ROUNDS})")
    p.add_argument("--max-constraints", type=int, default=MAX_CONSTRAINTS,
                   help=f"skip rollup sizes whose circuit is larger (default {MAX_CONSTRAINTS})")
    p.add_argument("--max-plain-values", type=int, default=MAX_PLAIN_VALUES,
                   help="PlainMarket rows with more uploaded values N·R·d are extrapolated linearly in N from "
                        f"the two largest measured N (default {MAX_PLAIN_VALUES}: measured up to N=8 at d=5701)")
    p.add_argument("--per-do-sample", type=int, default=None,
                   help=f"real proofs per per-DO-proof row; the rest at the measured mean (default {PER_DO_SAMPLE})")
    p.add_argument("--contracts", type=str_list, default=["plain", "rollup", "perdo"],
                   help="subset of plain,rollup,perdo")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_output_arguments(p)


def run(args) -> int:
    from omniplus.core.errors import InputError

    bad = set(args.contracts) - {"plain", "rollup", "perdo"}
    if bad:
        raise InputError(f"unknown --contracts {sorted(bad)}: choose from plain, rollup, perdo")
    preset = QUICK if args.quick else {}
    dims = args.dims or list(preset.get("dims", DIMS))
    batches = args.batch or list(preset.get("batches", BATCHES))
    rounds = args.rounds or preset.get("rounds", ROUNDS)
    sample = args.per_do_sample or preset.get("per_do_sample", PER_DO_SAMPLE)
    for name, values in (("--dims", dims), ("--batch", batches), ("--rounds", [rounds]),
                         ("--per-do-sample", [sample])):
        if any(v < 1 for v in values):
            raise InputError(f"{name} values must be positive")
    run_gas_bench(dims, batches, args.json, rounds=rounds, max_constraints=args.max_constraints,
                  per_do_sample=sample, max_plain_values=args.max_plain_values, contracts=args.contracts,
                  out_dir=args.out or BENCH_RESULTS, progress=not args.no_progress)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="gas benchmark: PlainMarket vs RollupMarket")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())


def plain_session_gas(d: int, N: int, R: int) -> dict:
    """PlainMarket (OmniLytics) gas for the same d, N, R on a fresh anvil: the demo's baseline."""
    with Anvil(accounts=N * R + 2) as node:
        row = plain_row(node, N, d, R)
    return {"total_gas": row["total_gas"], "per_batch_gas": row["total_gas"] // R, "note": row.get("note", "")}
