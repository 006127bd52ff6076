"""The market with real training, run on a local devnet: the MO and DO roles over the prover network.

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

import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from omniplus.core.errors import ChainError, OmniplusError
from omniplus.devnet import Devnet, DevnetOptions
from omniplus.ml.config import MarketConfig, Progress
from omniplus.ml.model import (
    accuracy,
    check_public,
    private_params,
    public_params,
    public_size,
    train,
)
from omniplus.ml.public_model import current_public, next_public, read_aggregates, read_public, write_public
from omniplus.ml.roles import DataOwner, prepare_data, pretrain
from omniplus.ml.updates import flatten, unflatten_into


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
            self.params, reward=self.opts.reward_wei, batches=self.opts.batches, deadline=deadline,
            min_batch=self.opts.min_batch,
        )
        self.market = RollupMarket.deploy(
            w3, key, verifier.address, task, committee=self.committee(), model_hash=self.model_hash_,
            model_uri=self.model_uri,
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


def submit_update(net: Devnet, do: DataOwner, row: Sequence[int], model_version: int | None = None) -> None:
    """One DO's update into a running devnet (an attacker skips the client-side bound check)."""
    from omniplus.servers.data_owner import Destination
    from omniplus.servers.data_owner import submit_update as submit

    to = Destination(servers=[f"127.0.0.1:{p[0]}" for p in net.ports], ca=(net.certs / "ca.pem").read_bytes(),
                     threshold=net.opts.threshold)
    submit(key=do.key, market=net.market, setup=net.setup, layout=net.layout, row=row, to=to,
           check=do.attack is None, model_version=model_version)


# The baseline's gas for the same run: (d, N, R) -> {"per_batch_gas", "note", ...}. The benchmark
# layer provides it (omniplus.bench.gas.plain_session_gas); the run itself never imports bench.
BaselineGas = Callable[[int, int, int], dict]


def run_market(cfg: MarketConfig, root: str | Path, progress: Progress | None = None,
               baseline_gas: BaselineGas | None = None) -> dict:
    """The whole market on a local devnet; returns the summary (see `format_summary`)."""
    cfg.check()
    say = progress or (lambda _m: None)
    t_start = time.monotonic()
    times: dict[str, float] = {}
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)

    t = time.monotonic()
    mo_data, test, partitions = prepare_data(cfg)
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
            DataOwner(i, a.address, a.key, partitions[i], cfg.attack if i in cfg.malicious else None)
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
                submit_update(net, do, row, model_version=r)  # trained from w_r: the public part after r batches
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
    if cfg.plain_gas and baseline_gas is not None:
        t = time.monotonic()
        say(f"[bench] PlainMarket (OmniLytics) for the same d={spec.dims}, N={cfg.batch}, R={len(rounds)}…")
        plain = baseline_gas(spec.dims, cfg.batch, max(1, len(rounds)))
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
