"""The encrypted global model (OmniLytics+): accuracy-lossless model perturbation by the MO.

After Yang et al. (arXiv 2002.09843; server-side form in arXiv 2412.11737), adapted so that the MO
recovers the true update from a *sum* of uploads (the servers only ever open the batch aggregate);
the maths, the adaptation and the threat model are in docs/ML.md. In short, per round the MO draws
fresh secrets and publishes only the perturbed model:

- every hidden layer l: positive scales r_l (one per neuron, one per channel for a convolution);
  Ŵ_l = diag(r_l) W_l diag(r_{l−1})⁻¹, b̂_l = r_l ∘ b_l (r_0 = 1). ReLU and max-pooling commute with
  positive scales, so the perturbed penultimate features are ŷ = r ∘ y exactly;
- the output layer (when it is traded): Ŵ_L = W_L diag(r)⁻¹ + γ vᵀ, b̂_L = b_L + c γ, so the perturbed
  logits are ẑ = z + α γ with α = v·ŷ + c per sample; with γ large against the logits the model's
  own predictions are noise (near chance).

A DO computes on the perturbed model, at the published point (one gradient: exactness holds there):
- the body's gradient through its *own* local head on standardised features (y − μ)/σ (statistics
  of its own data, held constant), which are the same numbers for ŷ = r ∘ y as for y, so the
  gradient in perturbed coordinates is exactly the true one divided elementwise by the scale S;
- the output layer's gradient of the squared error ½‖ẑ − t‖² (affine in ẑ, unlike cross-entropy):
  ĝ_W = mean (ẑ − t) ŷᵀ = g_W·diag(r) + γ (mean α ŷ)ᵀ, ĝ_b = g_b + γ mean α;
- auxiliary terms M = mean ŷŷᵀ (upper triangle), m = mean ŷ and the count 1, from which the MO
  gets mean α ŷ = M v + c m and mean α = v·m + c without the DO ever knowing α, γ, v or c.

Everything the MO does to recover is linear in the uploaded vector, so it works on the batch sum.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from omniplus.core.errors import InputError
from omniplus.ml.model import input_repeat, squared_loss, train

# ---------------------------------------------------------------------- the traded layout


@dataclass(frozen=True)
class Layout:
    """What a DO uploads, in order: the body's gradient, the output layer's gradient (if traded),
    the auxiliary terms (if the output layer is traded and perturbed)."""

    body: tuple[str, ...]
    head: str | None  # the output layer, when it is traded
    sizes: tuple[int, ...]  # parameter count per traded layer (weights + bias), body then head
    penultimate: int  # width of the output layer's input
    aux: bool

    @property
    def body_size(self) -> int:
        return sum(self.sizes[: len(self.body)])

    @property
    def head_size(self) -> int:
        return self.sizes[-1] if self.head else 0

    @property
    def aux_size(self) -> int:
        n = self.penultimate
        return n * (n + 1) // 2 + n + 1 if self.aux else 0

    @property
    def params(self) -> int:
        return self.body_size + self.head_size

    @property
    def dims(self) -> int:
        return self.params + self.aux_size


def layout_for(model: nn.Module, public: Sequence[str], *, encrypted: bool) -> Layout:
    """The gradient rule needs the DO to have every hidden layer: the public part is either all but the
    output layer (the MO keeps its head: the LG-FedAvg split) or every layer."""
    names = list(model.names)
    pub = [n for n in names if n in set(public)]
    if set(public) - set(names):
        raise InputError(f"public layers {list(public)} must be layers of {names}")
    if pub not in (names[:-1], names):
        raise InputError(f"with the gradient rule the public part is {names[:-1]} (head kept by the MO) or all "
                         f"of {names}, not {list(public)}")
    head_layer = getattr(model, names[-1])
    sizes = tuple(sum(p.numel() for p in getattr(model, n).parameters()) for n in pub)
    head = names[-1] if names[-1] in pub else None
    return Layout(tuple(n for n in pub if n != names[-1]), head, sizes, head_layer.in_features,
                  aux=encrypted and head is not None)


def _params(model: nn.Module, names: Sequence[str]) -> list[nn.Parameter]:
    out: list[nn.Parameter] = []
    for n in names:
        layer = getattr(model, n)
        out += [layer.weight, layer.bias]
    return out


def traded_params(model: nn.Module, layout: Layout) -> list[nn.Parameter]:
    return _params(model, [*layout.body, *([layout.head] if layout.head else [])])


def traded_vector(model: nn.Module, layout: Layout) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).to(torch.float64) for p in traded_params(model, layout)])


# ---------------------------------------------------------------------- the MO's secrets


@dataclass
class Secrets:
    """One round's perturbation: never leaves the MO."""

    version: int
    scales: dict[str, torch.Tensor] = field(default_factory=dict)  # hidden layer → r (per unit/channel)
    gamma: torch.Tensor | None = None  # noise direction on the logits
    v: torch.Tensor | None = None  # noise weights on the penultimate features
    c: float = 0.0


def draw_secrets(model: nn.Module, layout: Layout, calib_x: torch.Tensor, *, version: int, seed: int,
                 spread: float = 4.0, noise: float = 3.0) -> Secrets:
    """Fresh secrets: scales log-uniform in [1/spread, spread]; α = v·ŷ + c with spread ≈ 1 and mean
    in [1, 2] on the MO's own data; γ ~ noise·std(logits)·N(0, I), so the noise dominates the logits."""
    if spread < 1 or noise < 0:
        raise InputError(f"perturbation spread {spread} must be ≥ 1 and noise {noise} ≥ 0")
    gen = torch.Generator().manual_seed(seed)
    names = list(model.names)
    s = Secrets(version)
    for n in names[:-1]:
        units = getattr(model, n).weight.shape[0]
        s.scales[n] = torch.exp((torch.rand(units, generator=gen, dtype=torch.float64) * 2 - 1) * math.log(spread))
    if layout.head is None or noise == 0:
        return s
    with torch.no_grad():
        y = model.features(calib_x).to(torch.float64)
        z = model(calib_x).to(torch.float64)
    yh = y * _repeat(model, names[-1], s.scales.get(names[-2]))
    v = torch.randn(layout.penultimate, generator=gen, dtype=torch.float64)
    proj = yh @ v
    v = v / max(float(proj.std()), 1e-9)
    s.v = v
    s.c = float(1 + torch.rand(1, generator=gen, dtype=torch.float64)) - float((yh @ v).mean())
    s.gamma = torch.randn(z.shape[1], generator=gen, dtype=torch.float64) * noise * max(float(z.std()), 1e-3)
    return s


def _repeat(model: nn.Module, name: str, prev_scale: torch.Tensor | None) -> torch.Tensor | float:
    """The scale of each input column of layer `name` (1 for the model's input)."""
    if prev_scale is None:
        return 1.0
    return prev_scale.repeat_interleave(input_repeat(model, name))


def scale_factors(model: nn.Module, s: Secrets, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """S for a scaled layer (Ŵ = S∘W, b̂ = S_b∘b): r_out / r_in, broadcast to the weight's shape."""
    names = list(model.names)
    i = names.index(name)
    layer = getattr(model, name)
    out = s.scales.get(name, torch.ones(layer.weight.shape[0], dtype=torch.float64))
    prev = s.scales.get(names[i - 1]) if i > 0 else None
    inn = _repeat(model, name, prev)
    inn = torch.as_tensor(inn, dtype=torch.float64).expand(layer.weight.shape[1]) if not torch.is_tensor(inn) else inn
    shape = [-1, 1] + [1] * (layer.weight.dim() - 2)
    w = out.reshape(shape) / inn.reshape([1, -1] + [1] * (layer.weight.dim() - 2))
    return w.expand(layer.weight.shape), out


def perturb(model: nn.Module, s: Secrets) -> nn.Module:
    """A copy of the model with the perturbed weights (what the MO publishes, as float32)."""
    m = copy.deepcopy(model)
    names = list(model.names)
    with torch.no_grad():
        for n in names:
            layer = getattr(m, n)
            sw, sb = scale_factors(model, s, n)
            w = layer.weight.to(torch.float64) * sw
            b = layer.bias.to(torch.float64) * sb
            if n == names[-1] and s.gamma is not None:
                w = w + torch.outer(s.gamma, s.v)
                b = b + s.c * s.gamma
            layer.weight.copy_(w.to(layer.weight.dtype))
            layer.bias.copy_(b.to(layer.bias.dtype))
    return m


# ---------------------------------------------------------------------- the DO's upload


def local_head(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, seed: int, epochs: int, lr: float
               ) -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    """The DO's own head on standardised features (statistics of its data): the same function of the
    true features whether the body is perturbed by positive scales or not."""
    with torch.no_grad():
        f = model.features(x)
    mu = f.mean(0)
    sd = f.std(0)
    rms = f.pow(2).mean(0).sqrt()
    # a (nearly) constant feature is left out; the test is scale-free, so it is the same under r ∘ y
    inv = torch.where(sd > 1e-3 * rms, 1 / sd.clamp_min(1e-30), torch.zeros_like(sd))
    torch.manual_seed(seed)
    head = nn.Linear(f.shape[1], getattr(model, model.names[-1]).out_features)
    std = ((f - mu) * inv).detach()
    train(head, list(head.parameters()), std, y, epochs=epochs, lr=lr, seed=seed, loss="mse")
    return head, mu.detach(), inv.detach()


def upload(model: nn.Module, layout: Layout, x: torch.Tensor, y: torch.Tensor, *, seed: int,
           head_epochs: int = 20, lr: float = 0.02) -> torch.Tensor:
    """What a DO uploads (float64, before clipping and quantisation): the mean over its data of the
    body's gradient (through its own head), the output layer's gradient and the auxiliary terms."""
    if len(y) == 0:
        raise InputError("a DO with no data has nothing to upload")
    parts: list[torch.Tensor] = []
    if layout.body:
        head, mu, inv = local_head(model, x, y, seed=seed, epochs=head_epochs, lr=lr)
        body = _params(model, layout.body)
        model.zero_grad()
        loss = squared_loss(head((model.features(x) - mu) * inv), y)
        grads = torch.autograd.grad(loss, body)
        parts += [g.reshape(-1).to(torch.float64) for g in grads]
    if layout.head:
        with torch.no_grad():
            f = model.features(x).to(torch.float64)
            last = getattr(model, layout.head)
            zh = f @ last.weight.to(torch.float64).T + last.bias.to(torch.float64)
            err = zh - nn.functional.one_hot(y, zh.shape[1]).to(torch.float64)
            n = len(y)
            parts += [(err.T @ f / n).reshape(-1), err.mean(0)]
            if layout.aux:
                mm = f.T @ f / n
                iu = torch.triu_indices(f.shape[1], f.shape[1])
                parts += [mm[iu[0], iu[1]], f.mean(0), torch.ones(1, dtype=torch.float64)]
    out = torch.cat(parts)
    assert out.numel() == layout.dims
    return out


# ---------------------------------------------------------------------- the MO's recovery


def recover(total: torch.Tensor, model: nn.Module, layout: Layout, s: Secrets | None) -> torch.Tensor:
    """The true gradient (flat, traded parameters, true coordinates) from the sum of the uploads.
    Linear in `total`: the sum of the uploads gives the sum of the DOs' true gradients."""
    if total.numel() < layout.dims:
        raise InputError(f"aggregate has {total.numel()} values, the upload layout {layout.dims}")
    t = total[: layout.dims].to(torch.float64)
    if s is None:  # the plain model: the upload is the gradient
        return t[: layout.params].clone()
    out: list[torch.Tensor] = []
    i = 0
    for n in layout.body:
        layer = getattr(model, n)
        sw, sb = scale_factors(model, s, n)
        nw, nb = layer.weight.numel(), layer.bias.numel()
        out += [(t[i : i + nw].reshape(layer.weight.shape) * sw).reshape(-1), t[i + nw : i + nw + nb] * sb]
        i += nw + nb
    if layout.head:
        last = getattr(model, layout.head)
        k, n = last.weight.shape
        gw = t[i : i + k * n].reshape(k, n)
        gb = t[i + k * n : i + k * n + k]
        i += k * n + k
        sw, _ = scale_factors(model, s, layout.head)  # 1 / r_in per column
        if s.gamma is not None:
            if not layout.aux:
                raise InputError("a noised output layer needs the auxiliary terms in the upload")
            ntri = n * (n + 1) // 2
            iu = torch.triu_indices(n, n)
            mm = torch.zeros(n, n, dtype=torch.float64)
            mm[iu[0], iu[1]] = t[i : i + ntri]
            mm = mm + mm.T - torch.diag(mm.diagonal())
            m = t[i + ntri : i + ntri + n]
            count = t[i + ntri + n]
            a_y = mm @ s.v + s.c * m  # Σ α ŷ
            a = s.v @ m + s.c * count  # Σ α
            gw = gw - torch.outer(s.gamma, a_y)
            gb = gb - s.gamma * a
        out += [(gw * sw).reshape(-1), gb]
    return torch.cat(out)


def apply_gradient(model: nn.Module, layout: Layout, grad: torch.Tensor, lr: float) -> None:
    """θ ← θ − lr·grad on the traded parameters (the MO's step after a batch)."""
    i = 0
    with torch.no_grad():
        for p in traded_params(model, layout):
            p.sub_((lr * grad[i : i + p.numel()]).reshape(p.shape).to(p.dtype))
            i += p.numel()


def recovery_gain(model: nn.Module, layout: Layout, s: Secrets | None) -> torch.Tensor:
    """Σ_j |R_ij| for the linear recovery map R (per recovered coordinate): an error of at most e in every
    uploaded coordinate of the sum becomes at most gain·e in the recovered gradient. With quantisation,
    e = N/scale (N DOs, < 1 step each): the bound the recovery test checks."""
    if s is None:
        return torch.ones(layout.params, dtype=torch.float64)
    out: list[torch.Tensor] = []
    for n in layout.body:
        sw, sb = scale_factors(model, s, n)
        out += [sw.abs().reshape(-1), sb.abs()]
    if layout.head:
        sw, _ = scale_factors(model, s, layout.head)
        k = sw.shape[0]
        extra = 0.0 if s.gamma is None else float(s.v.abs().sum()) + abs(s.c)
        g = torch.zeros(k, dtype=torch.float64) if s.gamma is None else s.gamma.abs()
        out += [((1 + g * extra)[:, None] * sw.abs()).reshape(-1), 1 + g * extra]
    return torch.cat(out)


# ---------------------------------------------------------------------- the market's rule: statistics


@dataclass(frozen=True)
class StatsLayout:
    """The market's upload (same in both modes): the body's gradient through the DO's own head, then the
    output layer's sufficient statistics on the (perturbed) penultimate features ŷ, as means over the
    DO's data times its count (i.e. sums): T = Σ t ŷᵀ (classes × n), p = Σ t, M = Σ ŷŷᵀ (upper triangle),
    m = Σ ŷ and the count. None of them needs the published output layer, so its noise never enters the
    upload; every part is linear in ŷ's scales only, so the MO's recovery is a fixed diagonal map."""

    body: tuple[str, ...]
    body_size: int
    classes: int
    penultimate: int

    @property
    def cuts(self) -> tuple[int, ...]:
        """Segment boundaries: body, T, p, M, m, count."""
        k, n = self.classes, self.penultimate
        b = self.body_size
        return (0, b, b + k * n, b + k * n + k, b + k * n + k + n * (n + 1) // 2,
                b + k * n + k + n * (n + 1) // 2 + n, b + k * n + k + n * (n + 1) // 2 + n + 1)

    @property
    def dims(self) -> int:
        return self.cuts[-1]

    @property
    def stats_size(self) -> int:
        return self.dims - self.body_size


def stats_layout(model: nn.Module) -> StatsLayout:
    names = list(model.names)
    body = tuple(names[:-1])
    last = getattr(model, names[-1])
    return StatsLayout(body, sum(p.numel() for p in _params(model, body)), last.out_features, last.in_features)


def stats_upload(model: nn.Module, lay: StatsLayout, x: torch.Tensor, y: torch.Tensor, *, seed: int,
                 head_epochs: int = 20, lr: float = 0.02) -> torch.Tensor:
    """What a DO uploads (float64, before weighting, clipping and quantisation), computed on the published
    (perturbed or plain) model at the published point: sums over its data, so the batch sum is the sum
    over every DO's samples."""
    if len(y) == 0:
        raise InputError("a DO with no data has nothing to upload")
    n = len(y)
    head, mu, inv = local_head(model, x, y, seed=seed, epochs=head_epochs, lr=lr)
    body = _params(model, lay.body)
    model.zero_grad()
    loss = squared_loss(head((model.features(x) - mu) * inv), y)
    grads = torch.autograd.grad(loss, body)
    with torch.no_grad():
        f = model.features(x).to(torch.float64)
        t = nn.functional.one_hot(y, lay.classes).to(torch.float64)
        iu = torch.triu_indices(lay.penultimate, lay.penultimate)
        mm = f.T @ f
        parts = [g.reshape(-1).to(torch.float64) * n for g in grads]
        parts += [(t.T @ f).reshape(-1), t.sum(0), mm[iu[0], iu[1]], f.sum(0),
                  torch.full((1,), float(n), dtype=torch.float64)]
    out = torch.cat(parts)
    assert out.numel() == lay.dims
    return out


def stats_map(model: nn.Module, lay: StatsLayout, s: Secrets | None) -> torch.Tensor:
    """The recovery map, a diagonal: true = map ∘ uploaded (all ones for the plain model). Body: S; T:
    1/r per column; M: 1/(r_i r_j); m: 1/r."""
    if s is None:
        return torch.ones(lay.dims, dtype=torch.float64)
    out: list[torch.Tensor] = []
    for n in lay.body:
        sw, sb = scale_factors(model, s, n)
        out += [sw.reshape(-1), sb]
    names = list(model.names)
    r = torch.as_tensor(_repeat(model, names[-1], s.scales.get(names[-2])), dtype=torch.float64)
    r = r.expand(lay.penultimate) if r.dim() == 0 else r
    iu = torch.triu_indices(lay.penultimate, lay.penultimate)
    out += [(1 / r).repeat(lay.classes), torch.ones(lay.classes, dtype=torch.float64),
            1 / (r[iu[0]] * r[iu[1]]), 1 / r, torch.ones(1, dtype=torch.float64)]
    return torch.cat(out)


@dataclass
class Recovered:
    """The batch's true sums: the body's gradient (summed over samples) and the head's statistics."""

    body: torch.Tensor
    t: torch.Tensor  # classes × n
    p: torch.Tensor
    mm: torch.Tensor  # n × n
    m: torch.Tensor
    count: float


def stats_recover(total: torch.Tensor, model: nn.Module, lay: StatsLayout, s: Secrets | None) -> Recovered:
    """Linear in `total` (a diagonal map): the sum of the uploads gives the sums over all the DOs' samples."""
    if total.numel() < lay.dims:
        raise InputError(f"aggregate has {total.numel()} values, the upload layout {lay.dims}")
    v = total[: lay.dims].to(torch.float64) * stats_map(model, lay, s)
    c = lay.cuts
    n = lay.penultimate
    iu = torch.triu_indices(n, n)
    mm = torch.zeros(n, n, dtype=torch.float64)
    mm[iu[0], iu[1]] = v[c[3] : c[4]]
    mm = mm + mm.T - torch.diag(mm.diagonal())
    return Recovered(v[: c[1]].clone(), v[c[1] : c[2]].reshape(lay.classes, n), v[c[2] : c[3]].clone(), mm,
                     v[c[4] : c[5]].clone(), float(v[c[5]]))


def apply_recovered(model: nn.Module, lay: StatsLayout, rec: Recovered, *, lr: float, ridge: float,
                    mix: float = 1.0) -> None:
    """The MO's step: the body moves by lr × the mean gradient; the output layer moves by mix × the Newton
    step of the squared error on the batch's samples at the current features, i.e. towards the ridge
    least-squares head [W b] = [T p]·(H + λI)⁻¹, H = [[M, m], [mᵀ, count]] (λ not on the bias)."""
    if rec.count < 1:
        raise InputError(f"the batch's sample count {rec.count:.2f} is below one: nothing to apply")
    cnt = rec.count
    i = 0
    with torch.no_grad():
        for p in _params(model, lay.body):
            p.sub_((lr * rec.body[i : i + p.numel()] / cnt).reshape(p.shape).to(p.dtype))
            i += p.numel()
        n = lay.penultimate
        h = torch.zeros(n + 1, n + 1, dtype=torch.float64)
        h[:n, :n] = rec.mm / cnt
        h[:n, n] = h[n, :n] = rec.m / cnt
        h[n, n] = 1.0
        h[:n, :n] += ridge * torch.eye(n, dtype=torch.float64)
        rhs = torch.cat([rec.t, rec.p[:, None]], 1) / cnt
        sol = torch.linalg.solve(h, rhs.T).T  # (classes × n+1), h symmetric
        last = getattr(model, model.names[-1])
        w = last.weight.to(torch.float64)
        b = last.bias.to(torch.float64)
        last.weight.copy_(((1 - mix) * w + mix * sol[:, :n]).to(last.weight.dtype))
        last.bias.copy_(((1 - mix) * b + mix * sol[:, n]).to(last.bias.dtype))


def segment_weights(lay: StatsLayout, reference: torch.Tensor, *, per_coordinate: bool = False,
                    floor: float = 0.1) -> torch.Tensor:
    """A public per-segment weighting (published with the model version) so each segment of the upload
    has unit rms on the MO's own upload: one quantisation step then costs every segment about the same
    relative precision (the raw sums of squares would otherwise dwarf the gradient). Linear, undone by
    the MO after de-quantising."""
    w = torch.ones(lay.dims, dtype=torch.float64)
    c = lay.cuts
    for a, b in zip(c, c[1:], strict=False):
        rms = float(reference[a:b].pow(2).mean().sqrt())
        if rms <= 1e-12:
            continue
        if per_coordinate:  # each coordinate to unit size, none weighted more than 1/(floor·rms)
            w[a:b] = 1 / reference[a:b].abs().clamp_min(floor * rms)
        else:
            w[a:b] = 1 / rms
    return w
