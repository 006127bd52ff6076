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
from pathlib import Path
from typing import Any

import torch

from omniplus.core.errors import ChainError, OmniplusError
from omniplus.devnet import Devnet, DevnetOptions
from omniplus.ml.config import MarketConfig, Progress, spec_for
from omniplus.ml.model import accuracy, model_hash, public_params, public_size
from omniplus.ml.model_versions import publish_version, read_version
from omniplus.ml.perturb import Recovered
from omniplus.ml.public_model import read_aggregates
from omniplus.ml.roles import DataOwner, ModelOwner, Version, prepare_data, pretrain
from omniplus.ml.updates import QuantSpec, flatten


# ---------------------------------------------------------------------- network
class MarketNet(Devnet):
    """A Devnet whose RollupMarket carries the MO's public-model hash and URI (set before start)."""

    def run_batch(self, timeout: float | None = None) -> dict:
        """One coordinator process for exactly one batch; returns its state record (default wait:
        900 s × the devnet's timeout scale, so a paper-size batch on a loaded machine is not cut off)."""
        timeout = 900.0 * self.timeout_scale() if timeout is None else timeout
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

    to = Destination(servers=[f"127.0.0.1:{p[0]}" for p in net.ports], threshold=net.opts.threshold)
    submit(key=do.key, market=net.market, setup=net.setup, layout=net.layout, row=row, to=to,
           check=do.attack is None, model_version=model_version)


# The baseline's gas for the same run: (d, N, R) -> {"per_batch_gas", "note", ...}. The benchmark
# layer provides it (omniplus.bench.gas.plain_session_gas); the run itself never imports bench.
BaselineGas = Callable[[int, int, int], dict]


def run_market(cfg: MarketConfig, root: str | Path, progress: Progress | None = None,
               baseline_gas: BaselineGas | None = None) -> dict:
    """The whole market on a local devnet; returns the summary (see `format_summary`).

    Per round r: the MO publishes model version r (perturbed with fresh secrets, or plain with
    `cfg.encrypted` False), signed over (market, r, hash) with the task's modelOwner key; the round's
    DOs check it, upload their statistics at that point (weighted, clipped, quantised), share them to
    the servers; the batch is validated and proven; the MO reads the aggregate from the chain,
    de-quantises, recovers the true statistics and steps its true model."""
    cfg.check()
    say = progress or (lambda _m: None)
    t_start = time.monotonic()
    times: dict[str, float] = {}
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    mode = "encrypted" if cfg.encrypted else "plain"

    t = time.monotonic()
    mo_data, test, partitions = prepare_data(cfg)
    model = pretrain(cfg, mo_data)
    mo_only = accuracy(model, test.x, test.y)
    do_samples = float(sorted(len(p) for p in partitions)[len(partitions) // 2])
    mo = ModelOwner(cfg, model, mo_data, do_samples)
    lay = mo.layout
    dims = cfg.dims or lay.dims
    if dims < lay.dims:
        raise OmniplusError(f"circuit d={dims} is smaller than the upload ({lay.dims} values)")
    t0 = time.monotonic()
    v = mo.new_version(0)
    perturb_s = [round(time.monotonic() - t0, 3)]
    times["mo_pretrain"] = round(time.monotonic() - t, 2)
    n_params = sum(p.numel() for p in model.parameters())
    say(f"[mo] pretrained on {len(mo_data)} samples: MO-only accuracy {mo_only:.1%}; {mode} model, "
        f"published layers {mo.layers} ({public_size(model, mo.layers)} of {n_params} parameters); upload "
        f"{lay.dims} values (body gradient {lay.body_size} + head statistics {lay.stats_size})")

    opts = DevnetOptions(
        servers=3, dos=cfg.dos, invalid=0, batch=cfg.batch, dims=dims, bits=cfg.bits,
        norm_bound=cfg.norm_bound, backend=cfg.backend, batches=cfg.rounds, reward_wei=cfg.reward_wei,
        seed=cfg.seed, timeout_scale=None,  # scaled by circuit size and load (OMNIPLUS_TIMEOUT_SCALE overrides)
    )
    net = MarketNet(root / "net", opts, progress=say)
    net.model_hash_ = model_hash(flatten(public_params(v.published, v.layers)))
    net.model_uri = (root / "model_v0.json").as_uri()
    rounds: list[dict] = []
    dos: list[DataOwner] = []
    try:
        t = time.monotonic()
        net.start()
        times["network_start"] = round(time.monotonic() - t, 2)
        times.update({f"network_{k}": val for k, val in net.times.items()})
        mo_key = net.anvil.keys[0]  # the deployer: the task's modelOwner on-chain
        fn = net.market.contract.functions
        owner, onchain_hash = fn.modelOwner().call(), bytes(fn.modelHash().call())
        params = net.params
        accts = net.anvil.accounts[1 : 1 + cfg.dos]
        dos = [
            DataOwner(i, a.address, a.key, partitions[i],
                      cfg.attack if i in cfg.malicious else "zero" if i in cfg.free_riders else None)
            for i, a in enumerate(accts)
        ]
        acc = mo_only
        for r in range(cfg.rounds):
            members = dos[r * cfg.batch : (r + 1) * cfg.batch]
            if not members:
                break
            rec: dict[str, Any] = {"round": r, "dos": [m.index for m in members]}
            t = time.monotonic()
            if r > 0:
                t0 = time.monotonic()
                v = mo.new_version(r)
                perturb_s.append(round(time.monotonic() - t0, 3))
            path = root / f"model_v{r}.json"
            published = flatten(public_params(v.published, v.layers))
            publish_version(path, key=mo_key, market=net.market.address, version=r, arch=model.arch,
                            layers=v.layers, weights=published, upload_weights=v.upload_weights, clip=v.clip,
                            head_epochs=cfg.head_epochs, encrypted=cfg.encrypted)
            rec["publish_s"] = round(time.monotonic() - t, 2)
            rec["perturbed_accuracy"] = (accuracy(v.published, test.x, test.y)
                                         if cfg.encrypted and v.layers == list(model.names) else None)
            rec["model_file_bytes"] = path.stat().st_size
            say(f"[mo] round {r}: published {mode} model version {r} ({path.name}, signed by the modelOwner)"
                + (f"; as is it scores {rec['perturbed_accuracy']:.1%}" if rec["perturbed_accuracy"] is not None
                   else ""))
            t = time.monotonic()
            rows = []
            for do in members:
                doc = read_version(path, market=net.market.address, owner=owner, version=r,
                                   onchain_hash=onchain_hash)
                spec = spec_for(params.dims, params.bits, params.norm_bound, doc["upload"]["clip"])
                rows.append(do.version_row(doc, spec, seed=cfg.seed * 100003 + 97 * r + do.index))
                do.round = r
            rec["train_s"] = round(time.monotonic() - t, 2)
            t = time.monotonic()
            for do, row in zip(members, rows, strict=True):
                net.market.register(do.key)
                submit_update(net, do, row, model_version=r)  # the model version it checked and used
                sq = sum(x * x for x in row)
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
                why = next((val for a, val in rejected.items() if a.lower() == do.address.lower()), None)
                do.rejected = why
            t = time.monotonic()
            agg = read_aggregates(net.market, net.params)[-1]
            if agg["index"] != r:
                raise ChainError(f"expected batch {r} on-chain, found {agg['index']}")
            payees = {a.lower() for a in agg["payees"]}
            paid = [(do, row) for do, row in zip(members, rows, strict=True) if do.address.lower() in payees]
            # checks only this in-process harness can make (the MO never sees single updates)
            sums = [sum(c) for c in zip(*[row for _, row in paid], strict=True)]
            rec["aggregate_is_sum_of_paid_updates"] = agg["aggregate"] == sums[: len(agg["aggregate"])]
            spec = spec_for(params.dims, params.bits, params.norm_bound, v.clip)
            truth = recovery_reference(mo, v, [do for do, _ in paid], spec, cfg) if cfg.check_recovery else None
            t1 = time.monotonic()
            got = mo.apply(agg["aggregate"], spec)
            rec["recover_s"] = round(time.monotonic() - t1, 3)
            if truth is not None:
                rec["recovery"] = recovery_check(got, *truth, clamped_coordinates([row for _, row in paid], spec))
            acc = accuracy(model, test.x, test.y)
            rec["mo_update_s"] = round(time.monotonic() - t, 2)
            rec.update(gas=agg["gas"], payees=agg["payees"], accuracy=acc,
                       rejected={str(do.index): do.rejected for do in members if do.rejected})
            rounds.append(rec)
            say(f"[mo] round {r}: batch {agg['index']} on-chain (gas {agg['gas']:,}, {len(agg['payees'])} paid), "
                f"recovered the true statistics and stepped: accuracy {acc:.1%}")
        paid_wei = {do.address: net.market.credit(do.address) for do in dos}
        # contribution pay: each payee's proven score and amount (BatchSubmitted); a screened-out DO's
        # score is in its verdict (servers' Status) and in the coordinator's screening record
        scores: dict[str, int] = {}
        for ev in net.market.batch_events():
            scores.update({p.lower(): int(sc) for p, sc in zip(ev.payees, ev.scores, strict=False)})
        for b in net.coordinator_state().get("batches", []):
            for a, v in b.get("screening", {}).get("dropped", {}).items():
                scores.setdefault(a.lower(), int(v["score"]))
        accounts = net.market.accounts()
    finally:
        net.stop()
    plain = None
    if cfg.plain_gas and baseline_gas is not None:
        t = time.monotonic()
        say(f"[bench] PlainMarket (OmniLytics) for the same d={dims}, N={cfg.batch}, R={len(rounds)}…")
        plain = baseline_gas(dims, cfg.batch, max(1, len(rounds)))
        times["plain_gas"] = round(time.monotonic() - t, 2)
    for key in ("publish_s", "train_s", "submit_s", "batch_s", "mo_update_s"):
        times[f"rounds_{key[:-2]}"] = round(sum(r[key] for r in rounds), 2)
    times["total"] = round(time.monotonic() - t_start, 2)
    gases = [r["gas"] for r in rounds]
    pert = [r["perturbed_accuracy"] for r in rounds if r["perturbed_accuracy"] is not None]
    n = max(1, len(rounds))
    grad_only = lay.body_size + lay.classes * (lay.penultimate + 1)  # a gradient-only upload's size
    return {
        "mode": mode,
        "mo_only_accuracy": mo_only,
        "final_accuracy": acc,
        "perturbed_accuracy": sum(pert) / len(pert) if pert else None,
        "rounds": len(rounds),
        "per_round": rounds,
        "upload": {"values": lay.dims, "circuit_dims": dims, "body_gradient": lay.body_size,
                   "head_statistics": lay.stats_size, "gradient_only": grad_only,
                   "second_moments": lay.dims - grad_only, "extra_values_encrypted_vs_plain": 0},
        "extra_time_per_round_s": {"mo_perturb": round(sum(perturb_s) / len(perturb_s), 3) if cfg.encrypted else 0.0,
                                   "mo_recover": round(sum(r["recover_s"] for r in rounds) / n, 3)},
        "rollup_gas_per_batch": round(sum(gases) / len(gases)) if gases else None,
        "plain_gas_per_batch": plain["per_batch_gas"] if plain else None,
        "plain_note": plain["note"] if plain else None,
        "rejected": {do.address: {"do": do.index, "attack": do.attack, "reason": do.rejected}
                     for do in dos if do.rejected},
        "paid": paid_wei,
        "dos": [{"do": do.index, "address": do.address, "attack": do.attack, "round": do.round,
                 "samples": len(do.data), "paid_wei": paid_wei.get(do.address, 0), "rejected": do.rejected,
                 "score": scores.get(do.address.lower())}
                for do in dos],
        "accounts": accounts,
        "params": params.describe(),
        "constraints": net.setup.manifest.get("n_constraints") if net.setup else None,
        "public_layers": list(mo.layers),
        "public_size": public_size(model, mo.layers),
        "times_s": times,
    }


def recovery_reference(mo: ModelOwner, v: Version, paid: Sequence[DataOwner], spec: QuantSpec,
                       cfg: MarketConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Harness only (the MO never sees single uploads): the plaintext sum of the paid DOs' statistics on
    the *true* model (each times its clip factor), and the per-coordinate quantisation bound of the
    recovery, |map/weight|·(#paid)/scale."""
    from omniplus.ml.perturb import stats_map, stats_upload

    lay = mo.layout
    total = torch.zeros(lay.dims, dtype=torch.float64)
    for do in paid:
        seed = cfg.seed * 100003 + 97 * v.version + do.index
        true = stats_upload(mo.model, lay, do.data.x, do.data.y, seed=seed, head_epochs=cfg.head_epochs)
        shown = stats_upload(v.published, lay, do.data.x, do.data.y, seed=seed, head_epochs=cfg.head_epochs)
        total += true * min(1.0, v.clip / float((shown * v.upload_weights).norm()))
    bound = (stats_map(mo.model, lay, v.secrets) / v.upload_weights).abs() * len(paid) / spec.scale
    return total, bound


def clamped_coordinates(rows: Sequence[Sequence[int]], spec: QuantSpec) -> torch.Tensor:
    """Coordinates where some paid DO's quantised value sits at ±2^(k−1)−1: the DO clamped a spike there
    (ml/updates.py), so its recovered sum is off by the clamp, not by rounding."""
    q = torch.tensor([list(r) for r in rows], dtype=torch.int64)
    return (q.abs() >= spec.limit).any(dim=0)


def recovery_check(got: Recovered, truth: torch.Tensor, bound: torch.Tensor,
                   clamped: torch.Tensor | None = None) -> dict:
    """How far the MO's recovered sums are from the plaintext sums, against the quantisation bound (a
    small float allowance on top: the DOs compute in float32). The map is diagonal, so a coordinate a DO
    clamped affects only itself: those are counted and left out of the bound, the rest must meet it."""
    flat = torch.cat([got.body, got.t.reshape(-1), got.p, _triu(got.mm), got.m, torch.tensor([got.count])])
    keep = torch.ones_like(flat, dtype=torch.bool)
    if clamped is not None:
        keep[: min(len(keep), len(clamped))] = ~clamped[: len(keep)]
    err = (flat - truth).abs()
    slack = 1e-4 * truth.abs() + 1e-6
    ok = err <= bound + slack
    return {"max_error": float(err[keep].max()), "max_bound": float(bound.max()),
            "worst_ratio": float((err / (bound + slack))[keep].max()), "within_bound": bool(ok[keep].all()),
            "clamped": int((~keep).sum()), "clamped_worst_ratio": float((err / (bound + slack))[~keep].max())
            if (~keep).any() else 0.0}


def _triu(mm: torch.Tensor) -> torch.Tensor:
    iu = torch.triu_indices(mm.shape[0], mm.shape[0])
    return mm[iu[0], iu[1]]


def format_summary(s: dict) -> str:
    up = s["upload"]
    lines = [
        "",
        f"omniplus market — {s['mode']} model — {s['params']}, {s['constraints']} constraints; published "
        f"{s['public_layers']} ({s['public_size']} parameters)",
        f"accuracy: MO alone {s['mo_only_accuracy']:.1%} → with the market {s['final_accuracy']:.1%} "
        f"({(s['final_accuracy'] - s['mo_only_accuracy']) * 100:+.1f} points) after {s['rounds']} rounds",
    ]
    other = s.get("compare")
    if other:
        enc, pl = (s, other) if s["mode"] == "encrypted" else (other, s)
        lines.append(f"encrypted vs plain model (same seeds, {other['source']}): {enc['final_accuracy']:.1%} vs "
                     f"{pl['final_accuracy']:.1%} ({(enc['final_accuracy'] - pl['final_accuracy']) * 100:+.1f} "
                     "points)")
        if "round_s" in other:
            lines.append(f"wall time per round: encrypted {other['encrypted_round_s']}s vs plain {other['round_s']}s")
    if s["perturbed_accuracy"] is not None:
        lines.append(f"the published (perturbed) model as is: {s['perturbed_accuracy']:.1%} test accuracy "
                     "(mean over versions; chance is 10%)")
    et = s["extra_time_per_round_s"]
    lines.append(f"upload per DO: {up['values']} values (body gradient {up['body_gradient']} + head statistics "
                 f"{up['head_statistics']}); the encryption adds {up['extra_values_encrypted_vs_plain']} values "
                 f"(the same rule runs in the clear with --plain-model; a gradient-only upload would be "
                 f"{up['gradient_only']}, the second moments add {up['second_moments']})")
    lines.append(f"extra MO time per round for the encryption: perturb {et['mo_perturb']}s, recover "
                 f"{et['mo_recover']}s (the DOs' work is the same in both modes)")
    lines.append(f"{'round':>5} {'DOs':>8} {'paid':>4} {'gas':>9} {'acc':>7} {'as-is':>6} {'recovery':>9} "
                 f"{'clamped':>7}")
    for r in s["per_round"]:
        rc = r.get("recovery")
        ok = "-" if rc is None else ("≤bound" if rc["within_bound"] else "OVER")
        pa = "-" if r["perturbed_accuracy"] is None else f"{r['perturbed_accuracy']:.1%}"
        lines.append(f"{r['round']:>5} {','.join(map(str, r['dos'])):>8} {len(r['payees']):>4} "
                     f"{r['gas']:>9,} {r['accuracy']:>7.1%} {pa:>6} {ok:>9} "
                     f"{'-' if rc is None else rc.get('clamped', 0):>7}")
    if s["plain_gas_per_batch"]:
        lines.append(f"gas per batch: RollupMarket {s['rollup_gas_per_batch']:,} vs PlainMarket "
                     f"{s['plain_gas_per_batch']:,} ({s['plain_gas_per_batch'] / s['rollup_gas_per_batch']:.1f}×)")
    lines.append("payments:")
    for do in s["dos"]:
        tag = (" FREE-RIDER (zero update)" if do["attack"] == "zero"
               else f" ATTACKER ({do['attack']})" if do["attack"] else "")
        score = "-" if do.get("score") is None else do["score"]
        lines.append(f"  DO {do['do']} {do['address']} round {do['round']}: score {score}, {do['paid_wei']} wei{tag}")
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
