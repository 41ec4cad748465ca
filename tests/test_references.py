"""Our reference implementations against torch.optim, QK-clip, Sophia's Hessian hook, and the
claims the optimizer docstrings make about the libraries (bitsandbytes' decoupled decay, the
seed notes' Adam toy run)."""
from __future__ import annotations

import math

import pytest
import torch

import optimizers
from optimizers import build_optimizer
from optimizers.muon import MuonClip, qk_clip_
from optimizers.reference import Adafactor as RefAdafactor
from optimizers.reference import Adam as RefAdam
from optimizers.reference import AdamW as RefAdamW

SHAPES = [(7,), (5, 6), (3, 1, 4), (2, 3, 4, 5)]
STEPS = 100


def random_problem(seed):
    """A random smooth problem in float64: per-parameter quadratics with random curvature and
    targets plus a gentle coupling term. (Gentle: with strong coupling, e.g. sin of the sum of
    all elements, the dynamics at these step sizes are chaotic and amplify last-bit differences
    between two correct implementations to 1e-1 in 100 steps.)"""
    g = torch.Generator().manual_seed(seed)
    curv = [torch.exp(torch.randn(s, generator=g, dtype=torch.float64)) for s in SHAPES]
    targets = [torch.randn(s, generator=g, dtype=torch.float64) for s in SHAPES]
    init = [torch.randn(s, generator=g, dtype=torch.float64) for s in SHAPES]

    def loss(params):
        total = sum((c * (p - t) ** 2).sum() / 2 for c, p, t in zip(curv, params, targets))
        return total + 0.1 * torch.sin(sum(p.mean() for p in params))
    return init, loss


def run(opt_cls, hp, seed, steps=STEPS):
    init, loss = random_problem(seed)
    params = [torch.nn.Parameter(x.clone()) for x in init]
    opt = opt_cls(params, **hp)
    trajectory = []
    for _ in range(steps):
        opt.zero_grad()
        loss(params).backward()
        opt.step()
        trajectory.append(torch.cat([p.detach().flatten() for p in params]).clone())
    return trajectory, opt, params


def max_relative_difference(a, b):
    return max(((x - y).norm() / y.norm()).item() for x, y in zip(a, b))


def torch_adafactor(params, eps1=None, eps2=1e-3, **hp):
    return torch.optim.Adafactor(params, eps=(eps1, eps2), **hp)


CASES = [
    ("adam", RefAdam, torch.optim.Adam, dict(lr=1e-2)),
    ("adam-l2", RefAdam, torch.optim.Adam, dict(lr=3e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("adamw", RefAdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1)),
    ("adamw-betas", RefAdamW, torch.optim.AdamW, dict(lr=3e-2, betas=(0.5, 0.9), eps=1e-4, weight_decay=0.5)),
    ("adafactor", RefAdafactor, torch_adafactor, dict()),
    ("adafactor-decay", RefAdafactor, torch_adafactor,
     dict(lr=5e-2, beta2_decay=-0.5, eps1=1e-10, eps2=1e-2, d=2.0, weight_decay=0.05)),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_reference_matches_torch(case, seed):
    _, ours, theirs, hp = case
    a, opt_a, params_a = run(ours, hp, seed)
    b, opt_b, params_b = run(theirs, hp, seed)
    assert max_relative_difference(a, b) <= 1e-6
    assert (a[-1] - a[0]).norm() > 1e-3  # it moved
    for pa, pb in zip(params_a, params_b):   # and the state agrees, key by key
        sa, sb = opt_a.state[pa], opt_b.state[pb]
        assert set(sa) == set(sb)
        for key in sa:
            assert sa[key].shape == sb[key].shape and sa[key].dtype == sb[key].dtype, key
            assert torch.allclose(sa[key].double(), sb[key].double(), rtol=1e-6, atol=1e-12), key


@pytest.mark.parametrize("cls,key,value", [
    (RefAdam, "lr", -1e-3), (RefAdam, "lr", float("inf")), (RefAdam, "betas", (0.9, 1.0)),
    (RefAdam, "betas", (-0.1, 0.9)), (RefAdam, "eps", 0.0), (RefAdam, "weight_decay", -1.0),
    (RefAdamW, "eps", -1e-8), (RefAdamW, "betas", (0.9,)),
    (RefAdafactor, "lr", 0.0), (RefAdafactor, "beta2_decay", 0.1), (RefAdafactor, "eps1", 0.0),
    (RefAdafactor, "eps2", -1.0), (RefAdafactor, "d", 0.5), (RefAdafactor, "weight_decay", -0.1),
])
def test_reference_validates(cls, key, value):
    with pytest.raises(ValueError) as err:
        cls([torch.nn.Parameter(torch.zeros(3))], **{key: value})
    assert key in str(err.value) and repr(value) in str(err.value)


def test_seed_003_adam_toy_first_step():
    # Seed 003 prints x = 2.7272 after Adam's first step (lr 0.1, f = x^4 + 3x^3 + 2, x0 = 3):
    # Adam's first step is lr * sign(g) up to eps, so x1 = 2.9.
    x = torch.nn.Parameter(torch.tensor([3.0], dtype=torch.float64))
    opt = RefAdam([x], lr=0.1)
    (x ** 4 + 3 * x ** 3 + 2).sum().backward()
    opt.step()
    assert x.item() == pytest.approx(2.9, abs=1e-9)


# --------------------------------------------------------------------------------------------
# QK-clip

def heads_logits(x, w_q, w_k, n_heads):
    """[heads, t, t] logits q.k of each head for tokens x [t, hidden]."""
    d = w_q.shape[0] // n_heads
    q = (x @ w_q.T).view(-1, n_heads, d).transpose(0, 1)
    k = (x @ w_k.T).view(-1, n_heads, d).transpose(0, 1)
    return q @ k.transpose(-1, -2)


def test_qk_clip_scales_only_heads_above_tau():
    g = torch.Generator().manual_seed(0)
    n_heads, d, hidden = 3, 4, 8
    x = torch.randn(6, hidden, generator=g, dtype=torch.float64)
    layers = []
    for _ in range(2):
        w_q = torch.randn(n_heads * d, hidden, generator=g, dtype=torch.float64)
        w_k = torch.randn(n_heads * d, hidden, generator=g, dtype=torch.float64)
        w_q[:d] *= 3.0        # head 0: large logits
        w_k[:d] *= 3.0
        w_q[2 * d:] *= 0.1    # head 2: small logits
        layers.append((w_q, w_k, n_heads))
    before = [heads_logits(x, *layer) for layer in layers]
    s_max = torch.stack([b.amax(dim=(1, 2)) for b in before])          # [layers, heads]
    tau = float(s_max[:, 1].min()) * 0.999 if s_max[:, 1].min() > s_max[:, 2].max() else None
    assert tau is not None and (s_max[:, 0] > tau).all() and (s_max[:, 2] < tau).all()
    originals = [(w_q.clone(), w_k.clone()) for w_q, w_k, _ in layers]

    factors = qk_clip_(s_max, layers, tau)

    for layer, (b, (w_q, w_k, h), (q0, k0)) in enumerate(zip(before, layers, originals)):
        after = heads_logits(x, w_q, w_k, h)
        for head in range(h):
            rows = slice(head * d, (head + 1) * d)
            if s_max[layer, head] > tau:
                gamma = tau / s_max[layer, head]
                assert torch.allclose(after[head], b[head] * gamma, rtol=1e-12, atol=1e-12)
                assert after[head].max().item() == pytest.approx(tau, rel=1e-12)
                assert factors[layer, head].item() == pytest.approx(gamma.item(), rel=1e-12)
            else:
                assert torch.equal(w_q[rows], q0[rows]) and torch.equal(w_k[rows], k0[rows])
                assert torch.equal(after[head], b[head])
                assert factors[layer, head].item() == 1.0


@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan")])
def test_qk_clip_refuses_bad_tau(tau):
    w = torch.zeros(4, 4)
    with pytest.raises(ValueError, match="tau"):
        qk_clip_(torch.ones(1, 2), [(w, w.clone(), 2)], tau)
    with pytest.raises(ValueError, match="tau"):
        MuonClip([torch.nn.Parameter(torch.zeros(4, 4))], tau=tau)


def test_muonclip_entry_clips_through_composite():
    """The registry's muonclip is a Composite (Muon + AdamW); qk_clip reaches the Muon part."""
    torch.manual_seed(0)
    model = torch.nn.ModuleDict({
        "embed": torch.nn.Embedding(10, 8),
        "q": torch.nn.Linear(8, 8, bias=False),
        "k": torch.nn.Linear(8, 8, bias=False),
        "head": torch.nn.Linear(8, 3),
    })
    opt = build_optimizer("muonclip", list(model.named_parameters()), {"tau": 0.5})
    assert type(opt).__name__ == "Composite"
    x = model["embed"](torch.arange(10)).detach()
    layer = (model["q"].weight, model["k"].weight, 2)
    s_max = heads_logits(x, *layer).amax(dim=(1, 2))[None].detach()
    assert (s_max > 0.5).all()
    opt.qk_clip(s_max, [layer])
    after = heads_logits(x, *layer).amax(dim=(1, 2))
    assert torch.allclose(after, torch.full_like(after, 0.5), rtol=1e-5)


# --------------------------------------------------------------------------------------------
# Sophia

def test_sophia_update_hessian_changes_the_next_update():
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(4, 5, generator=g) for _ in range(4)]
    hessian_grad = torch.randn(4, 5, generator=g)
    init = torch.randn(4, 5, generator=g)

    def run_sophia(with_hessian):
        p = torch.nn.Parameter(init.clone())
        opt = build_optimizer("sophia", [("w", p)])
        for i, grad in enumerate(grads):
            p.grad = grad.clone()
            opt.step()
            if with_hessian and i == 1:
                p.grad = hessian_grad.clone()   # update_hessian reads .grad
                opt.update_hessian()
                beta2 = opt.param_groups[0]["betas"][1]
                assert torch.allclose(opt.state[p]["hessian"], (1 - beta2) * hessian_grad ** 2)
        return p.detach()

    without, with_h = run_sophia(False), run_sophia(True)
    assert not torch.allclose(without, with_h)
    # without an estimate (h = 0) every coordinate moves by lr * sign(m) (plus decay)
    spec = optimizers.get("sophia")
    lr, wd = spec.defaults["lr"], spec.defaults["weight_decay"]
    p = torch.nn.Parameter(init.clone())
    opt = build_optimizer("sophia", [("w", p)])
    p.grad = grads[0].clone()
    opt.step()
    expected = init * (1 - lr * wd) - lr * torch.sign(grads[0])
    assert torch.allclose(p.detach(), expected, rtol=0, atol=1e-7)


# --------------------------------------------------------------------------------------------
# bitsandbytes: Adam8bit's weight decay is decoupled (the docstring's claim)

def test_adam8bit_small_params_are_adamw():
    """Below 4096 elements bitsandbytes keeps float32 moments; Adam8bit with weight decay then
    follows torch's AdamW (decoupled decay), not torch's Adam (L2 in the gradient)."""
    g = torch.Generator().manual_seed(0)
    init = torch.randn(64, generator=g)
    grads = [torch.randn(64, generator=g) for _ in range(20)]

    def run_opt(build):
        p = torch.nn.Parameter(init.clone())
        opt = build([p])
        for grad in grads:
            p.grad = grad.clone()
            opt.step()
        return p.detach()

    hp = dict(lr=1e-2, weight_decay=0.5)
    bnb = run_opt(lambda ps: build_optimizer("adam8bit", [("w", ps[0])], hp, decay="all"))
    adamw = run_opt(lambda ps: torch.optim.AdamW(ps, **hp))
    adam = run_opt(lambda ps: torch.optim.Adam(ps, **hp))
    assert torch.allclose(bnb, adamw, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(bnb, adam, rtol=1e-3, atol=1e-4)


# --------------------------------------------------------------------------------------------
# Library entries follow the update rules their docstrings state (float64, from the equations)

def _run_entry(name, hp, init, grads):
    p = torch.nn.Parameter(init.clone())
    opt = build_optimizer(name, [("w", p)], hp)
    out = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        out.append(p.detach().clone())
    return out


def _problem(shape=(5, 4), steps=30):
    g = torch.Generator().manual_seed(3)
    return (torch.randn(shape, generator=g, dtype=torch.float64),
            [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(steps)])


def _lamb(init, grads, lr, wd, bias_correction, eps=1e-6, b1=0.9, b2=0.999):
    th, m, v, out = init.clone(), torch.zeros_like(init), torch.zeros_like(init), []
    for t, g in enumerate(grads, 1):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        mh, vh = (m / (1 - b1 ** t), v / (1 - b2 ** t)) if bias_correction else (m, v)
        u = mh / (vh.sqrt() + eps) + wd * th
        th = th - lr * min(th.norm().item(), 10.0) / (u.norm().item() + eps) * u
        out.append(th.clone())
    return out


def test_lamb_entry_is_the_papers_update():
    init, grads = _problem()
    # lambda = 0: the paper's Algorithm 2 (bias-corrected) up to eps
    ours = _run_entry("lamb", dict(lr=1e-2, weight_decay=0.0), init, grads)
    assert max_relative_difference(ours, _lamb(init, grads, 1e-2, 0.0, bias_correction=True)) <= 1e-4
    # lambda > 0: exactly the docstring's form (decay inside the ratio, no bias correction)
    ours = _run_entry("lamb", dict(lr=1e-2, weight_decay=0.1), init, grads)
    assert max_relative_difference(ours, _lamb(init, grads, 1e-2, 0.1, bias_correction=False)) <= 1e-12


def test_lion_entry_update():
    init, grads = _problem()
    th, m, expected = init.clone(), torch.zeros_like(init), []
    for g in grads:
        c = 0.9 * m + 0.1 * g
        th = th * (1 - 1e-2 * 0.1) - 1e-2 * torch.sign(c)
        m = 0.99 * m + 0.01 * g
        expected.append(th.clone())
    assert max_relative_difference(_run_entry("lion", dict(lr=1e-2, weight_decay=0.1), init, grads), expected) <= 1e-12


def _inverse_root(m, k):
    e, v = torch.linalg.eigh(m)
    return v @ torch.diag(e ** (-1.0 / k)) @ v.T


def test_shampoo_entry_update():
    init, grads = _problem(steps=10)
    th, left, right, expected = init.clone(), 1e-6 * torch.eye(5, dtype=torch.float64), \
        1e-6 * torch.eye(4, dtype=torch.float64), []
    for g in grads:
        left, right = left + g @ g.T, right + g.T @ g
        th = th - 1e-2 * _inverse_root(left, 4) @ g @ _inverse_root(right, 4)
        expected.append(th.clone())
    assert max_relative_difference(_run_entry("shampoo", dict(lr=1e-2), init, grads), expected) <= 1e-10


def test_adafactor_hf_entry_update():
    init, grads = _problem()
    th, row, col, expected = init.clone(), torch.zeros(5, dtype=torch.float64), torch.zeros(4, dtype=torch.float64), []
    lr, wd = 1e-2, 0.1
    for t, g in enumerate(grads, 1):
        beta = 1 - t ** -0.8
        g2 = g * g + 1e-30
        row, col = beta * row + (1 - beta) * g2.mean(1), beta * col + (1 - beta) * g2.mean(0)
        u = g / (torch.outer(row, col) / row.mean()).sqrt()
        u = u / max(1.0, (u.norm() / math.sqrt(u.numel())).item())
        th = th * (1 - wd * lr) - lr * u
        expected.append(th.clone())
    ours = _run_entry("adafactor-hf", dict(lr=lr, weight_decay=wd), init, grads)
    assert max_relative_difference(ours, expected) <= 1e-12
