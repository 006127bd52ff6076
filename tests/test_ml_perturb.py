"""The encrypted global model (ml/perturb.py): the MO recovers the DOs' true gradients exactly from the
sum of their perturbed uploads (within the stated quantisation bound), the perturbed model is useless
as it is, the true weights appear nowhere in what a DO or server receives, and ×100 still breaks B."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omniplus.core.errors import InputError
from omniplus.ml.config import spec_for
from omniplus.ml.data import load_digits
from omniplus.ml.model import accuracy, make_model, train
from omniplus.ml.perturb import (
    draw_secrets,
    layout_for,
    perturb,
    recover,
    recovery_gain,
    traded_vector,
    upload,
)
from omniplus.ml.updates import dequantize, quantize_update

MLP = {"in_features": 64, "hidden": [8], "classes": 10}
CNN = {"kind": "cnn", "side": 8, "channels": [16, 25], "hidden": [16], "classes": 10}


@pytest.fixture(scope="module")
def digits():
    torch.set_num_threads(1)
    return load_digits()


def _trained(arch: dict, ds) -> torch.nn.Module:
    m = make_model(arch, 0)
    train(m, list(m.parameters()), ds.x[:200], ds.y[:200], epochs=20, lr=0.05)
    return m


def _parts(ds, n: int = 3):
    return [(ds.x[300 + 80 * i : 380 + 80 * i], ds.y[300 + 80 * i : 380 + 80 * i]) for i in range(n)]


@pytest.mark.parametrize("arch", [MLP, CNN], ids=["mlp", "cnn"])
@pytest.mark.parametrize("split", [False, True], ids=["all-traded", "head-kept"])
def test_recovered_sum_equals_plain_sum(arch, split, digits) -> None:
    """Exact up to float32 rounding: the DOs' perturbed uploads, summed, give the plain gradients' sum."""
    m = _trained(arch, digits)
    public = m.names[:-1] if split else m.names
    lay, plain = layout_for(m, public, encrypted=True), layout_for(m, public, encrypted=False)
    s = draw_secrets(m, lay, digits.x[:200], version=0, seed=3)
    mh = perturb(m, s)
    ups = [upload(mh, lay, x, y, seed=10 + i) for i, (x, y) in enumerate(_parts(digits))]
    ref = sum(upload(m, plain, x, y, seed=10 + i) for i, (x, y) in enumerate(_parts(digits)))
    got = recover(sum(ups), m, lay, s)
    assert got.shape == ref.shape == (lay.params,)
    assert float((got - ref).abs().max()) < 1e-4 * max(1.0, float(ref.abs().max()))
    assert lay.dims == lay.params + (0 if split else lay.aux_size)
    # the perturbed upload itself is not the gradient (the noise and the scales are in it)
    assert float((sum(ups)[: lay.params] - ref).abs().max()) > 10 * float((got - ref).abs().max())


def test_recovery_within_quantisation_bound(digits) -> None:
    """Each DO quantises its upload (< 1 step per coordinate): the recovered sum differs from the plain
    float sum by at most gain·N/scale per coordinate, gain = Σ_j |R_ij| of the linear recovery map."""
    m = _trained(MLP, digits)
    lay = layout_for(m, m.names, encrypted=True)
    s = draw_secrets(m, lay, digits.x[:200], version=1, seed=4)
    mh = perturb(m, s)
    parts = _parts(digits)
    ups = [upload(mh, lay, x, y, seed=i) for i, (x, y) in enumerate(parts)]
    ref = sum(upload(m, layout_for(m, m.names, encrypted=False), x, y, seed=i) for i, (x, y) in enumerate(parts))
    clip = 1.01 * max(float(u.norm()) for u in ups)  # no DO is clipped: the bound is the rounding alone
    spec = spec_for(lay.dims, 24, 2**40, clip)  # k large enough that nothing is clamped
    qs = [quantize_update(u, spec, seed=i) for i, u in enumerate(ups)]
    agg = [sum(c) for c in zip(*qs, strict=True)]  # what the servers open
    got = recover(dequantize(agg, spec), m, lay, s)
    bound = recovery_gain(m, lay, s) * len(parts) / spec.scale
    err = (got - ref).abs()
    assert bool((err <= bound + 1e-4 * float(ref.abs().max())).all())
    assert float(err.max()) > 0  # quantisation did change something: the bound is not vacuous


def test_perturbed_model_is_useless_and_hides_the_weights(digits) -> None:
    m = _trained(MLP, digits)
    x, y = digits.x[1000:], digits.y[1000:]
    lay = layout_for(m, m.names, encrypted=True)
    s = draw_secrets(m, lay, digits.x[:200], version=0, seed=5)
    mh = perturb(m, s)
    assert accuracy(m, x, y) > 0.6
    assert accuracy(mh, x, y) < 0.3  # the output noise dominates: near chance (10 classes)
    true = traded_vector(m, lay).to(torch.float32).numpy()
    shown = traded_vector(mh, lay).to(torch.float32).numpy()
    nonzero = true[np.abs(true) > 1e-6]
    assert not np.isin(nonzero, shown).any()  # no true weight appears anywhere in the published model
    up = upload(mh, lay, x[:100], y[:100], seed=1).to(torch.float32).numpy()
    assert not np.isin(nonzero, up).any()  # nor in what the DO uploads (what the servers share)
    s2 = draw_secrets(m, lay, digits.x[:200], version=1, seed=6)
    assert float((traded_vector(perturb(m, s2), lay) - traded_vector(mh, lay)).abs().max()) > 0.1  # fresh


def test_scaled_upload_still_breaks_the_bound(digits) -> None:
    m = _trained(MLP, digits)
    lay = layout_for(m, m.names, encrypted=True)
    s = draw_secrets(m, lay, digits.x[:200], version=0, seed=7)
    u = upload(perturb(m, s), lay, digits.x[300:400], digits.y[300:400], seed=0)
    spec = spec_for(lay.dims, 12, 2**26, float(u.norm()))
    assert sum(v * v for v in quantize_update(u, spec, seed=0)) <= spec.norm_bound
    assert sum(v * v for v in quantize_update(u * 100, spec, seed=0, clip=False)) > spec.norm_bound


def test_cnn_trades_about_as_much_as_omnilytics(digits) -> None:
    m = make_model(CNN, 0)
    lay = layout_for(m, m.names, encrypted=True)
    assert lay.params == 5571 and lay.dims == 5724  # OmniLytics' MNIST CNN trades 5,701
    assert m(digits.x[:5]).shape == (5, 10)


def test_layouts_refused() -> None:
    m = make_model(MLP, 0)
    with pytest.raises(InputError, match="gradient rule"):
        layout_for(m, ["fc2"], encrypted=True)  # the DO would lack fc1
    with pytest.raises(InputError, match="must be layers"):
        layout_for(m, ["conv1"], encrypted=True)
    lay = layout_for(m, m.names, encrypted=True)
    with pytest.raises(InputError, match="aggregate has"):
        recover(torch.zeros(3), m, lay, None)
