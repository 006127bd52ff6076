"""The market with real training: the MO and DO roles over the prover network (a Devnet).

One task (one RollupMarket) runs R rounds; round r is batch r with up to N DOs. RollupMarket pays
each DO once per task (PROTOCOL: one update per task), so, as in OmniLytics' rounds, the DOs are
spread over the rounds: round r's DOs start from the public part after rounds 0..r−1.

Why the DOs can trust the published model without a new on-chain hash per round: the public
part changes *only* through on-chain aggregates. The MO publishes w₀ (its hash is the task's
modelHash) and after round r sets w_r = w_{r−1} + (de-quantised aggregate r)/|payees r|, in
float32, by `next_public` — a function of chain data alone that every DO recomputes. The MO's
fine-tuning on its private data touches only its private layers. A DO therefore checks the
published w₀ against modelHash (HashMismatch otherwise) and derives w_r from the events.

Per round: the round's DOs train E epochs (after a warm-up of their own local private layers,
see ml/model.py), clip, quantise stochastically to k bits, register once, and send share j to
server j; the coordinator validates on shares (out-of-bound DOs are rejected and never paid),
proves, and submits; the MO reads the BatchSubmitted event, checks its words against the
commitment and the transaction's calldata, de-quantises, applies FedAvg and fine-tunes.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omniplus.core.errors import ChainError, InputError, OmniplusError
from omniplus.devnet import Devnet, DevnetOptions
from omniplus.ml.attacks import apply_attack
from omniplus.ml.data import Dataset, load_digits, split_dirichlet, split_iid, train_test_split
from omniplus.ml.model import (
    MLP,
    accuracy,
    check_public,
    make_model,
    model_hash,
    private_params,
    public_params,
    public_size,
    train,
)
from omniplus.ml.updates import QuantSpec, fedavg_delta, flatten, quantize_update, unflatten_into

Progress = Callable[[str], None]


class HashMismatch(InputError):
    """The published public weights do not hash to the task's on-chain modelHash."""


class NotRegistered(ChainError):
    """The DO is not registered for this task on RollupMarket."""


@dataclass
class MarketConfig:
    """Everything about one run; defaults are the demo's (d=520, N=2, k=6: a 2^13 batch circuit)."""

    dos: int = 8
    malicious: tuple[int, ...] = (5,)  # DO indices that attack
    attack: str = "scale"
    rounds: int = 4  # R
    batch: int = 2  # N
    hidden: tuple[int, ...] = (8,)
    public: tuple[str, ...] = ("fc1",)
    bits: int = 6  # k
    norm_bound: int = 7535  # B
    dims: int | None = None  # circuit d; None = the public part's size (larger = zero-padded)
    clip: float = 5.0  # L2 bound on the float update
    mo_samples: int = 40
    test_fraction: float = 0.25
    alpha: float | None = None  # Dirichlet α for non-IID DOs; None = IID
    mo_pre_epochs: int = 40
    mo_epochs: int = 10
    do_warmup_epochs: int = 5
    do_epochs: int = 30
    lr: float = 0.1
    seed: int = 0
    backend: str = "snarkjs"
    reward_wei: int = 10**15
    plain_gas: bool = True

    def spec(self, d_public: int) -> QuantSpec:
        """T = √B − √d (so ⌈(T + √d)²⌉ ≤ B): the largest clip norm in quantised units B admits."""
        d = self.dims or d_public
        if d < d_public:
            raise InputError(f"circuit d={d} is smaller than the public part ({d_public} values)")
        return spec_for(d, self.bits, self.norm_bound, self.clip)

    def check(self) -> MarketConfig:
        if not 1 <= self.batch:
            raise InputError("N must be positive")
        if self.dos > self.batch * self.rounds:
            raise InputError(f"{self.dos} DOs do not fit in R={self.rounds} batches of N={self.batch}")
        if any(not 0 <= i < self.dos for i in self.malicious):
            raise InputError(f"malicious DO indices {self.malicious} must be in [0, {self.dos})")
        return self


def spec_for(dims: int, bits: int, norm_bound: int, clip: float) -> QuantSpec:
    """The quantisation a task's (d, k, B) implies for a float clip C: T = √B − √d, scale T/C.
    The MO and every DO derive it from the same on-chain numbers."""
    target = math.sqrt(norm_bound) - math.sqrt(dims) - 1e-6
    if target <= 1:
        raise InputError(f"B={norm_bound} is too small for d={dims}: no room for an update")
    spec = QuantSpec(clip=clip, target=target, bits=bits, dims=dims)
    assert spec.norm_bound <= norm_bound
    return spec


# ---------------------------------------------------------------------- the public model file
def write_public(path: Path, arch: dict, layers: Sequence[str], vector: torch.Tensor, spec: QuantSpec) -> bytes:
    """Publish w₀ for the DOs (JSON: exact float32 values) and return its hash (the modelHash)."""
    v32 = vector.to(torch.float32)
    doc = {
        "arch": arch,
        "public_layers": list(layers),
        "weights": [float(x) for x in v32],
        "quant": asdict(spec),
    }
    path.write_text(json.dumps(doc))
    return model_hash(v32)


def read_public(path: str | Path, expected_hash: bytes) -> dict:
    """Load the published w₀ and check it against the on-chain modelHash (HashMismatch if not)."""
    try:
        doc = json.loads(Path(path).read_text())
        w = torch.tensor(doc["weights"], dtype=torch.float32)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read the published public model {path}: {exc}") from exc
    got = model_hash(w)
    if got != bytes(expected_hash):
        raise HashMismatch(
            f"published public model {path} hashes to 0x{got.hex()}, but the task's modelHash is "
            f"0x{bytes(expected_hash).hex()}: refusing to train on it"
        )
    doc["weights"] = w
    doc["quant"] = QuantSpec(**doc["quant"])
    return doc


def next_public(w: torch.Tensor, aggregate: Sequence[int], accepted: int, spec: QuantSpec) -> torch.Tensor:
    """w_r = w_{r−1} + FedAvg of the batch, in float32: the one rule the MO and every DO apply."""
    delta = fedavg_delta(aggregate, accepted, spec)[: w.numel()]
    return (w.to(torch.float64) + delta).to(torch.float32)


def words_hash(words: Sequence[int]) -> bytes:
    from web3 import Web3

    return bytes(Web3.keccak(b"".join(int(x).to_bytes(32, "big") for x in words)))


def read_aggregates(market: Any, params: Any) -> list[dict]:
    """Every batch on-chain: the event's words checked against its commitment, the contract's stored
    commitment and the submitBatch calldata; then unpacked to the signed aggregate."""
    from omniplus.prover.binding import unpack_words

    out = []
    for ev in sorted(market.batch_events(), key=lambda e: e.index):
        c = words_hash(ev.words)
        stored = bytes(market.contract.functions.aggregateCommitments(ev.index).call())
        if c != ev.commitment or c != stored:
            raise ChainError(f"batch {ev.index}: event words do not match the aggregate commitment")
        tx = market.w3.eth.get_transaction(ev.tx_hash)
        _, args = market.contract.decode_function_input(tx["input"])
        if [int(x) for x in args["words"]] != [int(x) for x in ev.words] or [
            a.lower() for a in args["payees"]
        ] != [a.lower() for a in ev.payees]:
            raise ChainError(f"batch {ev.index}: event differs from the submitBatch calldata")
        gas = market.w3.eth.get_transaction_receipt(ev.tx_hash)["gasUsed"]
        out.append(
            {"index": ev.index, "aggregate": unpack_words(params, ev.words), "payees": list(ev.payees), "gas": gas}
        )
    return out


def current_public(w0: torch.Tensor, market: Any, params: Any, spec: QuantSpec) -> torch.Tensor:
    """What a DO derives from the chain: w₀ plus every batch so far."""
    w = w0
    for b in read_aggregates(market, params):
        w = next_public(w, b["aggregate"], len(b["payees"]), spec)
    return w


# ---------------------------------------------------------------------- DO
@dataclass
class DataOwner:
    index: int
    address: str
    key: str
    data: Dataset
    attack: str | None = None
    rejected: str | None = None
    round: int | None = None

    def train_update(self, w: torch.Tensor, arch: dict, layers: Sequence[str], cfg: MarketConfig) -> torch.Tensor:
        """E epochs on the DO's data from public weights w, with its own local private layers
        (warmed up first with the public part frozen); returns the public part's change."""
        m = make_model(arch, 1000 + self.index + 7919 * cfg.seed)
        unflatten_into(public_params(m, layers), w)
        x, y = self.data.x, self.data.y
        train(m, private_params(m, layers), x, y, epochs=cfg.do_warmup_epochs, lr=cfg.lr, seed=self.index)
        train(m, list(m.parameters()), x, y, epochs=cfg.do_epochs, lr=cfg.lr, seed=self.index + 1)
        return flatten(public_params(m, layers)) - w.to(torch.float64)

    def quantised(self, update: torch.Tensor, spec: QuantSpec, seed: int) -> list[int]:
        if self.attack is None:
            return quantize_update(update, spec, seed)
        return quantize_update(apply_attack(self.attack, update, seed), spec, seed, clip=False)


def require_registered(market: Any, address: str) -> None:
    if not market.contract.functions.registered(address).call():
        raise NotRegistered(
            f"DO {address} is not registered for task {market.address}: register on the market first "
            "(one registration per task)"
        )


def submit_row(setup: Any, layout: Any, market: Any, key: str, address: str, row: Sequence[int], ca: bytes,
               servers: Sequence[str], t: int = 1, *, check: bool = True) -> None:
    """Share the DO's witness block, send share j to server j (signed). An honest DO's client
    refuses an out-of-bound row itself (check=True); an attacker builds its block without it."""
    from omniplus.prover.field import R
    from omniplus.prover.mpc.batch import make_block
    from omniplus.prover.witness import do_block
    from omniplus.servers.client import TaskRef, submit_block

    require_registered(market, address)
    if check:
        block = make_block(setup, layout, row)
    else:
        wires = do_block(setup, 0, list(row), check=False)
        block = [wires[w] % R for w in layout.slot_wires[0]]
    task = TaskRef.parse(market.address, market.chain_id)
    outs = submit_block(key, task, servers, list(layout.slot_wires[0]), block, ca, t=t)
    bad = [o for o in outs if not o.accepted]
    if bad:
        raise OmniplusError(f"DO {address}: refused by server {bad[0].server}: {bad[0].message}")


def submit_update(net: Devnet, do: DataOwner, row: Sequence[int]) -> None:
    """submit_row against a running devnet."""
    submit_row(net.setup, net.layout, net.market, do.key, do.address, row, (net.certs / "ca.pem").read_bytes(),
               [f"127.0.0.1:{p[0]}" for p in net.ports], net.opts.threshold, check=do.attack is None)


# ---------------------------------------------------------------------- network
class MarketNet(Devnet):
    """A Devnet whose RollupMarket carries the MO's public-model hash and URI."""

    model_hash_: bytes = b"\0" * 32
    model_uri: str = ""

    def _deploy(self) -> None:
        from omniplus.contracts.rollup import RollupMarket, TaskParams
        from omniplus.contracts.verifier import deploy_verifier

        w3, key = self.anvil.w3, self.anvil.keys[0]
        verifier = deploy_verifier(w3, key, self.setup.path)
        self.verifier_address = verifier.address
        deadline = int(w3.eth.get_block("latest")["timestamp"]) + 7 * 24 * 3600
        task = TaskParams.from_circuit(
            self.params, reward=self.opts.reward_wei, batches=self.opts.batches, deadline=deadline
        )
        self.market = RollupMarket.deploy(
            w3, key, verifier.address, task, model_hash=self.model_hash_, model_uri=self.model_uri
        )
        self.say(f"RollupMarket at {self.market.address}, modelHash 0x{self.model_hash_.hex()[:16]}…")

    def run_batch(self, timeout: float = 900.0) -> dict:
        """One coordinator process for exactly one batch; returns its state record."""
        before = len([b for b in self.coordinator_state()["batches"] if b["status"] == "submitted"])
        proc = self.start_coordinator(batches=1)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise OmniplusError(f"no batch after {timeout:.0f}s:\n{self.coordinator_log()[-3000:]}") from None
        done = [b for b in self.coordinator_state()["batches"] if b["status"] == "submitted"]
        if proc.returncode != 0 or len(done) <= before:
            raise OmniplusError(
                f"coordinator exited with {proc.returncode}:\n{self.coordinator_log()[-3000:]}"
            )
        self.coordinator_proc = None
        return done[-1]


# ---------------------------------------------------------------------- the run
def prepare_data(cfg: MarketConfig) -> tuple[Dataset, Dataset, list[Dataset]]:
    """(MO's private data, test set, one share per DO)."""
    ds = load_digits()
    tr, te = train_test_split(ds, cfg.test_fraction, cfg.seed)
    perm = np.random.default_rng(cfg.seed + 1).permutation(len(tr))
    mo, rest = tr.subset(perm[: cfg.mo_samples]), tr.subset(perm[cfg.mo_samples :])
    if cfg.alpha is None:
        shares = split_iid(rest, cfg.dos, cfg.seed + 2)
    else:
        shares = split_dirichlet(rest, cfg.dos, cfg.alpha, cfg.seed + 2, min_size=10)
    return mo, te, shares


def pretrain(cfg: MarketConfig, mo: Dataset) -> MLP:
    model = make_model({"in_features": mo.x.shape[1], "hidden": list(cfg.hidden), "classes": 10}, cfg.seed)
    check_public(model, cfg.public)
    train(model, list(model.parameters()), mo.x, mo.y, epochs=cfg.mo_pre_epochs, batch_size=16, lr=0.05,
          seed=cfg.seed)
    return model


def plain_gas(d: int, N: int, R: int) -> dict:
    """PlainMarket (OmniLytics) gas for the same d, N, R on a fresh anvil (bench/gas.py's run)."""
    from omniplus.bench.gas import plain_row
    from omniplus.contracts.chain import Anvil

    with Anvil(accounts=N * R + 2) as node:
        row = plain_row(node, N, d, R)
    return {"total_gas": row["total_gas"], "per_batch_gas": row["total_gas"] // R, "note": row.get("note", "")}


def run_market(cfg: MarketConfig, root: str | Path, progress: Progress | None = None) -> dict:
    """The whole market on a local devnet; returns the summary (see `format_summary`)."""
    cfg.check()
    say = progress or (lambda _m: None)
    t_start = time.monotonic()
    times: dict[str, float] = {}
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)

    t = time.monotonic()
    mo_data, test, shares = prepare_data(cfg)
    model = pretrain(cfg, mo_data)
    layers = check_public(model, cfg.public)
    d_pub = public_size(model, layers)
    spec = cfg.spec(d_pub)
    mo_only = accuracy(model, test.x, test.y)
    times["mo_pretrain"] = round(time.monotonic() - t, 2)
    say(f"[mo] pretrained on {len(mo_data)} samples: MO-only accuracy {mo_only:.1%} "
        f"(public {layers}: {d_pub} of {sum(p.numel() for p in model.parameters())} parameters)")

    w0 = flatten(public_params(model, layers)).to(torch.float32)
    public_file = root / "public_model.json"
    h = write_public(public_file, model.arch, layers, w0, spec)
    opts = DevnetOptions(
        servers=3, dos=cfg.dos, invalid=0, batch=cfg.batch, dims=spec.dims, bits=cfg.bits,
        norm_bound=cfg.norm_bound, backend=cfg.backend, batches=cfg.rounds, reward_wei=cfg.reward_wei,
        seed=cfg.seed,
    )
    net = MarketNet(root / "net", opts, progress=say)
    net.model_hash_, net.model_uri = h, public_file.as_uri()
    rounds: list[dict] = []
    dos: list[DataOwner] = []
    try:
        t = time.monotonic()
        net.start()
        times["network_start"] = round(time.monotonic() - t, 2)
        times.update({f"network_{k}": v for k, v in net.times.items()})
        say(f"[mo] published the public part ({spec.dims} values) at {public_file}")
        accts = net.anvil.accounts[1 : 1 + cfg.dos]
        dos = [
            DataOwner(i, a.address, a.key, shares[i], cfg.attack if i in cfg.malicious else None)
            for i, a in enumerate(accts)
        ]
        w = w0
        acc = mo_only
        for r in range(cfg.rounds):
            members = dos[r * cfg.batch : (r + 1) * cfg.batch]
            if not members:
                break
            rec: dict[str, Any] = {"round": r, "dos": [m.index for m in members]}
            t = time.monotonic()
            rows = []
            for do in members:
                doc = read_public(public_file, net.market.contract.functions.modelHash().call())
                w_do = current_public(doc["weights"], net.market, net.params, doc["quant"])
                upd = do.train_update(w_do, model.arch, layers, cfg)
                rows.append(do.quantised(upd, spec, seed=cfg.seed * 100003 + 97 * r + do.index))
                do.round = r
            rec["train_s"] = round(time.monotonic() - t, 2)
            t = time.monotonic()
            for do, row in zip(members, rows, strict=True):
                net.market.register(do.key)
                submit_update(net, do, row)
                sq = sum(v * v for v in row)
                say(f"[do {do.index}] {'ATTACKER (' + do.attack + ') ' if do.attack else ''}round {r}: "
                    f"|q|^2={sq} ({'within' if sq <= cfg.norm_bound else 'ABOVE'} B={cfg.norm_bound}), "
                    "registered, shares sent")
            rec["submit_s"] = round(time.monotonic() - t, 2)
            t = time.monotonic()
            batch = net.run_batch()
            rec["batch_s"] = round(time.monotonic() - t, 2)
            rec["batch_phases_s"] = batch.get("seconds", {})
            rejected = net.coordinator_state().get("rejected", {})
            for do in members:
                why = next((v for a, v in rejected.items() if a.lower() == do.address.lower()), None)
                do.rejected = why
            t = time.monotonic()
            agg = read_aggregates(net.market, net.params)[-1]
            if agg["index"] != r:
                raise ChainError(f"expected batch {r} on-chain, found {agg['index']}")
            paid_rows = [row for do, row in zip(members, rows, strict=True)
                         if do.address.lower() in {a.lower() for a in agg["payees"]}]
            # a check only this in-process harness can make (the MO never sees single updates)
            sums = [sum(c) for c in zip(*paid_rows, strict=True)]
            rec["aggregate_is_sum_of_paid_updates"] = agg["aggregate"] == sums[: len(agg["aggregate"])]
            w = next_public(w, agg["aggregate"], len(agg["payees"]), spec)
            unflatten_into(public_params(model, layers), w)
            after_agg = accuracy(model, test.x, test.y)
            train(model, private_params(model, layers), mo_data.x, mo_data.y, epochs=cfg.mo_epochs,
                  batch_size=16, lr=0.05, seed=cfg.seed + r)
            acc = accuracy(model, test.x, test.y)
            rec["mo_update_s"] = round(time.monotonic() - t, 2)
            rec.update(gas=agg["gas"], payees=agg["payees"], accuracy_after_aggregate=after_agg, accuracy=acc,
                       rejected={str(do.index): do.rejected for do in members if do.rejected})
            rounds.append(rec)
            say(f"[mo] round {r}: batch {agg['index']} on-chain (gas {agg['gas']:,}, "
                f"{len(agg['payees'])} paid), accuracy {after_agg:.1%} after FedAvg, {acc:.1%} after fine-tuning")
        paid = {do.address: net.market.credit(do.address) for do in dos}
        accounts = net.market.accounts()
        params = net.params
    finally:
        net.stop()
    plain = None
    if cfg.plain_gas:
        t = time.monotonic()
        say(f"[bench] PlainMarket (OmniLytics) for the same d={spec.dims}, N={cfg.batch}, R={len(rounds)}…")
        plain = plain_gas(spec.dims, cfg.batch, max(1, len(rounds)))
        times["plain_gas"] = round(time.monotonic() - t, 2)
    for key in ("train_s", "submit_s", "batch_s", "mo_update_s"):
        times[f"rounds_{key[:-2]}"] = round(sum(r[key] for r in rounds), 2)
    times["total"] = round(time.monotonic() - t_start, 2)
    gases = [r["gas"] for r in rounds]
    return {
        "mo_only_accuracy": mo_only,
        "final_accuracy": acc,
        "rounds": len(rounds),
        "per_round": rounds,
        "rollup_gas_per_batch": round(sum(gases) / len(gases)) if gases else None,
        "plain_gas_per_batch": plain["per_batch_gas"] if plain else None,
        "plain_note": plain["note"] if plain else None,
        "rejected": {do.address: {"do": do.index, "attack": do.attack, "reason": do.rejected}
                     for do in dos if do.rejected},
        "paid": paid,
        "dos": [{"do": do.index, "address": do.address, "attack": do.attack, "round": do.round,
                 "samples": len(do.data), "paid_wei": paid.get(do.address, 0), "rejected": do.rejected}
                for do in dos],
        "accounts": accounts,
        "params": params.describe(),
        "constraints": net.setup.manifest.get("n_constraints") if net.setup else None,
        "public_layers": list(layers),
        "public_size": d_pub,
        "quant": asdict(spec),
        "times_s": times,
    }


def format_summary(s: dict) -> str:
    lines = [
        "",
        f"omniplus market — {s['params']}, {s['constraints']} constraints; public {s['public_layers']} "
        f"({s['public_size']} values)",
        f"accuracy: MO alone {s['mo_only_accuracy']:.1%} → with the market {s['final_accuracy']:.1%} "
        f"({(s['final_accuracy'] - s['mo_only_accuracy']) * 100:+.1f} points) after {s['rounds']} rounds",
        f"{'round':>5} {'DOs':>8} {'paid':>4} {'gas':>9} {'acc':>7}",
    ]
    for r in s["per_round"]:
        lines.append(f"{r['round']:>5} {','.join(map(str, r['dos'])):>8} {len(r['payees']):>4} "
                     f"{r['gas']:>9,} {r['accuracy']:>7.1%}")
    if s["plain_gas_per_batch"]:
        lines.append(f"gas per batch: RollupMarket {s['rollup_gas_per_batch']:,} vs PlainMarket "
                     f"{s['plain_gas_per_batch']:,} ({s['plain_gas_per_batch'] / s['rollup_gas_per_batch']:.1f}×)")
    lines.append("payments:")
    for do in s["dos"]:
        tag = f" ATTACKER ({do['attack']})" if do["attack"] else ""
        lines.append(f"  DO {do['do']} {do['address']} round {do['round']}: {do['paid_wei']} wei{tag}")
    for addr, r in s["rejected"].items():
        lines.append(f"rejected: DO {r['do']} {addr}: {r['reason']}")
    lines.append("time per phase (s): " + ", ".join(f"{k} {v}" for k, v in s["times_s"].items()))
    return "\n".join(lines)


def plot(s: dict, path: Path) -> Path:
    """Accuracy and gas per round (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = [r["round"] + 1 for r in s["per_round"]]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot([0, *rs], [s["mo_only_accuracy"], *[r["accuracy"] for r in s["per_round"]]], "o-", label="MO + market")
    a1.axhline(s["mo_only_accuracy"], ls="--", color="gray", label="MO alone")
    a1.set_xlabel("round")
    a1.set_ylabel("test accuracy")
    a1.legend()
    a2.bar(rs, [r["gas"] for r in s["per_round"]], label="RollupMarket (one proof per batch)")
    if s["plain_gas_per_batch"]:
        a2.axhline(s["plain_gas_per_batch"], color="red", label="PlainMarket per round (OmniLytics)")
    a2.set_yscale("log")
    a2.set_xlabel("round")
    a2.set_ylabel("gas (log scale)")
    a2.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path

