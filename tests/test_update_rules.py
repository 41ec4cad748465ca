"""Hand-computed update steps: each entry's library against the paper's equations.

For each entry, a few steps on a tiny float64 problem are computed here in numpy, directly from the
equations its module docstring writes out (the paper's, with the library's documented departures),
and compared with what the registry's optimizer does to the same parameters and gradients.

Tolerance. Everything runs in float64 (unit round-off 1.1e-16). One step is a few tens of
elementwise operations on well-conditioned values (no cancellation: moments of one sign, square
roots of positive sums, ratios of sums of like-signed terms), and the hand computation orders
the operations differently from the library, so the two agree to ~1e-15 relative per step and
~1e-14 after a few steps. ``RTOL = 1e-12`` leaves two orders of magnitude of margin and is still
ten thousand times tighter than any of the departures discussed in the docstrings (an epsilon
moved across a bias correction changes a step by ~1e-6 relative here). Three checks are looser and
say why: Prodigy's d (a ratio with x0 - x_k, a cancelling difference, in its numerator), SOAP after
its eigenbasis refresh and PSGD-Kron after its first factor update, where the libraries
deliberately compute a QR decomposition or a triangular solve in float32.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from optimizers import build_optimizer

RTOL = 1e-12      # float64, a few tens of operations per step: see the module docstring
ATOL = 0.0        # relative agreement only (exact zeros, as in a triangular factor, still compare equal)
D_RTOL = 1e-9     # Prodigy's d: cancellation in x0 - x_k (see the test)
F32_RTOL = 1e-5   # a float32 QR / triangular solve inside the library (~6e-8 relative, amplified
                  # by the conditioning of the small statistics matrices, and by later steps)


def params64(*arrays):
    return [torch.nn.Parameter(torch.tensor(a, dtype=torch.float64)) for a in arrays]


def close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=rtol, atol=atol)


def quadratic(h, c):
    """Gradient of f(x) = 0.5 sum h (x - c)^2: a gradient that depends on where it is taken."""
    return lambda x: h * (x - c)


_rng = np.random.default_rng(20240916)
H4, C4 = _rng.uniform(0.5, 3.0, 4), _rng.normal(size=4)
X4 = _rng.normal(size=4)


def rng(test: int) -> np.random.Generator:
    """Each test's own stream: its data does not depend on which tests ran before it."""
    return np.random.default_rng([20240916, test])


# ------------------------------------------------------------------------------------------
# AdEMAMix (Pagliardini et al. 2024, Algorithm 1, with the alpha / beta3 warm-up schedulers)

def test_ademamix_three_steps_match_the_paper():
    r = rng(1)
    lr, (b1, b2, b3), alpha, T, eps, wd = 0.01, (0.9, 0.99, 0.999), 5.0, 4.0, 1e-8, 0.1
    grads = [r.normal(size=5) for _ in range(3)]
    x = r.normal(size=5)
    (p,) = params64(x)
    opt = build_optimizer("ademamix", [("x", p)], dict(lr=lr, betas=(b1, b2, b3), alpha=alpha,
                                                       t_alpha_beta3=T, eps=eps, weight_decay=wd), decay="all")
    m1, m2, v = np.zeros(5), np.zeros(5), np.zeros(5)
    for t, g in enumerate(grads, start=1):
        alpha_t = min(t * alpha / T, alpha)
        b3_t = min(math.exp(math.log(b1) * math.log(b3)
                            / ((1 - t / T) * math.log(b3) + (t / T) * math.log(b1))), b3)
        m1 = b1 * m1 + (1 - b1) * g
        m2 = b3_t * m2 + (1 - b3_t) * g
        v = b2 * v + (1 - b2) * g * g
        m1_hat, v_hat = m1 / (1 - b1 ** t), v / (1 - b2 ** t)
        x = x * (1 - lr * wd) - lr * (m1_hat + alpha_t * m2) / (np.sqrt(v_hat) + eps)

        p.grad = torch.tensor(g)
        opt.step()
        close(p.detach(), x)


# ------------------------------------------------------------------------------------------
# MARS-AdamW (Yuan et al. 2024, approximate form): a matrix (MARS) and a vector (AdamW branch)

def test_mars_three_steps_match_the_paper():
    r = rng(2)
    lr, (b1, b2), gamma, eps, wd = 0.01, (0.95, 0.99), 0.025, 1e-8, 0.1
    b1_1d, b2_1d, wd_1d = 0.9, 0.95, 0.1      # the library's fixed 1-D AdamW branch
    W, b = r.normal(size=(3, 4)), r.normal(size=4)
    # gradient scales chosen so that ||c_t|| > 1 (clipped) at some steps and < 1 at others
    gW = [0.05 * r.normal(size=(3, 4)), 2.0 * r.normal(size=(3, 4)), 0.04 * r.normal(size=(3, 4))]
    gb = [r.normal(size=4) for _ in range(3)]
    pW, pb = params64(W, b)
    opt = build_optimizer("mars", [("w", pW), ("b", pb)],
                          dict(lr=lr, betas=(b1, b2), gamma=gamma, eps=eps, weight_decay=wd), decay="all")

    m, v, last = np.zeros_like(W), np.zeros_like(W), np.zeros_like(W)
    mb, vb = np.zeros_like(b), np.zeros_like(b)
    clipped = []
    for t, (g, g1) in enumerate(zip(gW, gb), start=1):
        c = g + gamma * b1 / (1 - b1) * (g - last)
        norm = np.linalg.norm(c)
        clipped.append(norm > 1)
        c = c / max(1.0, norm)
        m = b1 * m + (1 - b1) * c
        v = b2 * v + (1 - b2) * c * c
        m_hat = m / (1 - b1 ** t)
        # the library's denominator: eps (and 1e-15 inside the root) before the bias correction
        den = (np.sqrt(v + 1e-15) + eps) / math.sqrt(1 - b2 ** t)
        u, u_paper = m_hat / den, m_hat / (np.sqrt(v / (1 - b2 ** t)) + eps)
        W = W * (1 - lr * wd) - lr * u
        last = g

        mb = b1_1d * mb + (1 - b1_1d) * g1
        vb = b2_1d * vb + (1 - b2_1d) * g1 * g1
        den_b = (np.sqrt(vb + 1e-15) + eps) / math.sqrt(1 - b2_1d ** t)
        b = b * (1 - lr * wd_1d) - lr * (mb / (1 - b1_1d ** t)) / den_b

        pW.grad, pb.grad = torch.tensor(g), torch.tensor(g1)
        opt.step()
        close(pW.detach(), W)
        close(pb.detach(), b)
        # the paper's epsilon placement changes the step by at most eps / sqrt(1 - b2^t) / sqrt(v_hat)
        # relative, coordinate by coordinate (~1e-6 here): epsilon-sized, not more
        bound = eps / math.sqrt(1 - b2 ** t) / np.sqrt(v / (1 - b2 ** t)).min()
        assert 0 < np.max(np.abs(u_paper - u) / np.abs(u)) <= 1.01 * bound < 1e-4
    assert any(clipped) and not all(clipped)


# ------------------------------------------------------------------------------------------
# Schedule-Free AdamW (Defazio et al. 2024): the library (v1.3+ form) and the paper's Algorithm 1

def schedule_free_by_hand(x, grad, steps, lr, b1, b2, eps, wd, warmup, paper, uniform_weights=False):
    """Returns (y, x) after `steps` steps: y = what the parameters hold in train mode, x = after eval().
    ``uniform_weights``: c_{t+1} = 1/t whatever gamma_t (to isolate the weights' share of a difference)."""
    z, v = x.copy(), np.zeros_like(x)
    weights = 0.0
    lr_max = -1.0
    for t in range(1, steps + 1):
        y = (1 - b1) * z + b1 * x
        g = grad(y)
        v = b2 * v + (1 - b2) * g * g
        sched = min(1.0, t / warmup) if warmup else 1.0
        if paper:   # Algorithm 1: the bias correction sits in gamma_t (step, decay and weights)
            gamma = lr * sched * math.sqrt(1 - b2 ** t)
            step = g / (np.sqrt(v) + eps) + wd * y
        else:       # schedulefree >= 1.3: v is bias-corrected instead
            gamma = lr * sched
            step = g / (np.sqrt(v / (1 - b2 ** t)) + eps) + wd * y
        lr_max = max(lr_max, gamma)          # = gamma_t here: gamma_t does not decrease
        w = 1.0 if uniform_weights else lr_max ** 2
        weights += w                         # c_{t+1} = gamma_t^2 / sum_i gamma_i^2 (r = 0)
        c = w / weights
        z = z - gamma * step
        x = (1 - c) * x + c * z
    return (1 - b1) * z + b1 * x, x


@pytest.mark.parametrize("paper", [False, True], ids=["entry", "paper-algorithm-1"])
def test_schedule_free_adamw_three_steps_match_the_equations(paper):
    import schedulefree
    hp = dict(lr=0.05, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, warmup_steps=2)
    grad = quadratic(H4, C4)
    (p,) = params64(X4)
    if paper:
        opt = schedulefree.AdamWScheduleFreePaper([p], **hp)
        opt.train()
    else:
        opt = build_optimizer("schedulefree-adamw", [("x", p)], hp, decay="all")
    for _ in range(3):
        p.grad = torch.tensor(grad(p.detach().numpy()))   # the gradient at y, where p is
        opt.step()
    y, x = schedule_free_by_hand(X4.copy(), grad, 3, hp["lr"], *hp["betas"], hp["eps"],
                                 hp["weight_decay"], hp["warmup_steps"], paper)
    close(p.detach(), y)
    opt.eval()
    close(p.detach(), x)
    opt.train()
    close(p.detach(), y)


def test_schedule_free_entry_differs_from_the_paper_only_as_documented():
    # With lambda = 0 the z-steps of the two forms differ only in where eps sits (eps/sqrt(1-b2^t)
    # against eps); the averaging weights differ for real: the paper's c_{t+1} weighs iterate t by
    # gamma_t^2 = gamma^2 (1 - b2^t), which favours later iterates while 1 - b2^t is small; the
    # library's lr-only weights give c_{t+1} = 1/t at a constant lr.
    grad = quadratic(H4, C4)
    args = (grad, 5, 0.05, 0.9, 0.999, 1e-8, 0.0, 0)
    entry = schedule_free_by_hand(X4.copy(), *args, paper=False)
    paper = schedule_free_by_hand(X4.copy(), *args, paper=True)
    paper_uniform = schedule_free_by_hand(X4.copy(), *args, paper=True, uniform_weights=True)
    # eps-sized: the step rules agree to eps / sqrt(1 - b2) / |g| ~ 1e-8 / 0.03 / 0.3 ~ 1e-6 relative
    close(entry[1], paper_uniform[1], rtol=1e-5)
    assert np.abs(entry[1] - paper[1]).max() > 1e-3           # the weights do not


# ------------------------------------------------------------------------------------------
# Prodigy (Mishchenko & Defazio 2024, Adam version)

def test_prodigy_four_steps_match_the_paper():
    lr, (b1, b2), eps, wd, d0, d_coef = 1.0, (0.9, 0.999), 1e-8, 0.1, 1e-6, 1.0
    b3 = math.sqrt(b2)
    grad = quadratic(H4, C4)
    (p,) = params64(X4)
    opt = build_optimizer("prodigy", [("x", p)], dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd,
                                                     decouple=True, d0=d0, d_coef=d_coef), decay="all")
    x, x0 = X4.copy(), X4.copy()
    d, r, s, m, v = d0, 0.0, np.zeros(4), np.zeros(4), np.zeros(4)
    grew = False
    for _ in range(4):
        g = grad(x)
        r = b3 * r + (1 - b3) * lr * d * d * np.dot(g, x0 - x)
        s = b3 * s + (1 - b3) * lr * d * d * g
        m = b1 * m + (1 - b1) * d * g
        v = b2 * v + (1 - b2) * d * d * g * g
        d_new = max(d, d_coef * r / np.abs(s).sum())
        grew |= d_new > d
        # the library adds eps * d_{k+1} (the paper: d_k); see prodigy.py
        x = x * (1 - lr * d * wd) - lr * d * m / (np.sqrt(v) + d_new * eps)
        d = d_new

        p.grad = torch.tensor(grad(p.detach().numpy()))
        opt.step()
        close(p.detach(), x)
        # d is a ratio whose numerator holds x0 - x_k, a difference of O(1) numbers that is ~1e-5
        # here: the two computations' last-bit differences in x (~1e-16) become ~1e-11 in d
        close(opt.param_groups[0]["d"], d, rtol=D_RTOL)
    assert grew   # the estimate moved off d0: the d-update was exercised


def test_prodigy_entry_follows_the_library_bit_for_bit_with_a_zero_parameter():
    from prodigyopt import Prodigy
    torch.manual_seed(3)
    w0, b0 = torch.randn(4, 3), torch.zeros(3)          # b is all zero at its first step

    def run(build):
        w, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
        opt = build([w, b])
        for k in range(5):
            gen = torch.Generator().manual_seed(k)
            w.grad, b.grad = torch.randn(4, 3, generator=gen), torch.randn(3, generator=gen)
            opt.step()
        return w.detach(), b.detach(), opt

    w1, b1, lib = run(lambda ps: Prodigy(ps))
    w2, b2, ours = run(lambda ps: build_optimizer("prodigy", [("w", ps[0]), ("b", ps[1])]))
    assert torch.equal(w1, w2) and torch.equal(b1, b2)
    assert lib.param_groups[0]["d"] == ours.param_groups[0]["d"]
    assert lib.state[lib.param_groups[0]["params"][1]]["p0"].numel() == 1   # the library's 0-d p0 ...
    assert ours.state[ours.param_groups[0]["params"][1]]["p0"].numel() == 3  # ... the entry's full copy


# ------------------------------------------------------------------------------------------
# D-Adapt Adam (Defazio & Mishchenko 2023; dadaptation version 3)

def test_dadapt_adam_four_steps_match_the_equations():
    r = rng(3)
    lr, (b1, b2), eps, wd, d0 = 1.0, (0.9, 0.999), 1e-8, 0.1, 1e-6
    sb2 = math.sqrt(b2)
    grad = quadratic(H4, C4)
    y0 = r.normal(size=2)
    grad2 = quadratic(np.array([2.0, 0.7]), np.array([0.3, -1.0]))
    px, py = params64(X4, y0)
    opt = build_optimizer("dadapt-adam", [("x", px), ("y", py)],
                          dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, decouple=False, d0=d0), decay="all")
    xs = [X4.copy(), y0.copy()]
    st = [dict(m=np.zeros_like(a), v=np.zeros_like(a), s=np.zeros_like(a)) for a in xs]
    d, r = d0, 0.0
    grew = False
    for _ in range(4):
        gs = [grad(xs[0]) + wd * xs[0], grad2(xs[1]) + wd * xs[1]]   # L2 decay (decouple=False)
        lam = lr * d
        acc = sum(np.dot(g, q["s"] / (np.sqrt(q["v"]) + eps)) for g, q in zip(gs, st)) * lam
        for g, q in zip(gs, st):
            q["m"] = b1 * q["m"] + (1 - b1) * lam * g
            q["v"] = b2 * q["v"] + (1 - b2) * g * g
            q["s"] = sb2 * q["s"] + (1 - sb2) * lam * g
        r = sb2 * r + (1 - sb2) * acc
        d_new = max(d, r / ((1 - sb2) * sum(np.abs(q["s"]).sum() for q in st)))
        grew |= d_new > d
        d = d_new
        xs = [a - q["m"] / (np.sqrt(q["v"]) + eps) for a, q in zip(xs, st)]

        px.grad = torch.tensor(grad(px.detach().numpy()))
        py.grad = torch.tensor(grad2(py.detach().numpy()))
        opt.step()
        close(px.detach(), xs[0])
        close(py.detach(), xs[1])
        close(opt.param_groups[0]["d"], d)
    assert grew


# ------------------------------------------------------------------------------------------
# SOAP (Vyas et al. 2024): Adam in the eigenbasis of Shampoo's statistics

def descending_eigvecs(m):
    _, q = np.linalg.eigh(m + 1e-30 * np.eye(len(m)))
    return q[:, ::-1]


def test_soap_four_calls_match_the_equations():
    r = rng(4)
    lr, (b1, b2), wd, eps, freq = 0.1, (0.95, 0.95), 0.01, 1e-8, 2
    bs = b2                                              # shampoo_beta None -> betas[1]
    W = r.normal(size=(2, 3))
    grads = [r.normal(size=(2, 3)) for _ in range(4)]
    (p,) = params64(W)
    opt = build_optimizer("soap", [("w", p)], dict(lr=lr, betas=(b1, b2), weight_decay=wd,
                                                   precondition_frequency=freq, eps=eps))
    # call 1: statistics and bases only; the parameters do not move
    G = grads[0]
    L, R = (1 - bs) * G @ G.T, (1 - bs) * G.T @ G
    QL, QR = descending_eigvecs(L), descending_eigvecs(R)
    M, V = np.zeros_like(W), np.zeros_like(W)
    p.grad = torch.tensor(G)
    opt.step()
    close(p.detach(), W)

    for t, G in enumerate(grads[1:], start=1):
        Gp = QL.T @ G @ QR
        M = b1 * M + (1 - b1) * G
        V = b2 * V + (1 - b2) * Gp * Gp
        N = QL @ ((QL.T @ M @ QR) / (np.sqrt(V) + eps)) @ QR.T
        W = (W - lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * N) * (1 - lr * wd)
        L, R = bs * L + (1 - bs) * G @ G.T, bs * R + (1 - bs) * G.T @ G
        refreshed_before = t > freq
        if t % freq == 0:   # one power-iteration step + QR, V permuted with the sorted columns
            Qs = []
            for axis, (S, Q) in enumerate(((L, QL), (R, QR))):
                idx = np.argsort(-np.diag(Q.T @ S @ Q), kind="stable")
                V = np.take(V, idx, axis=axis)
                Qs.append(np.linalg.qr(S @ Q[:, idx])[0])
            QL, QR = Qs

        p.grad = torch.tensor(G)
        opt.step()
        # before the first refresh: float64 throughout; after it, the library's QR was float32
        close(p.detach(), W, rtol=F32_RTOL if refreshed_before else RTOL)


def test_soap_state_is_the_counted_tensors():
    from optimizers.soap import soap_state_bytes
    from optimizers import state_bytes
    w, b = torch.nn.Parameter(torch.randn(5, 7)), torch.nn.Parameter(torch.randn(7))
    opt = build_optimizer("soap", [("w", w), ("b", b)])
    for _ in range(2):
        w.grad, b.grad = torch.randn(5, 7), torch.randn(7)
        opt.step()
    assert [tuple(q.shape) for q in opt.state[w]["Q"]] == [(5, 5), (7, 7)]
    assert opt.state[b]["Q"] == [[]] and opt.state[b]["GG"] == [[]]      # 1-D: no factors
    assert state_bytes(opt) == soap_state_bytes((5, 7), torch.float32) + soap_state_bytes((7,), torch.float32)
    # a dimension above max_precondition_dim gets no factor (identity)
    assert soap_state_bytes((10001, 3), torch.float32) == (2 * 10001 * 3 + 2 * 9) * 4


# ------------------------------------------------------------------------------------------
# PSGD-Kron (Li 2018/2019; kron_torch form): a diagonal and a triangular-factor case

def norm_lower_bound(a):
    """Li's cheap lower bound on the spectral norm of a (psgd_torch / kron_torch ``norm_lower_bound``)."""
    m = np.abs(a).max()
    a = a / (m if m > 0 else 1.0)
    aa = a * a
    col, row = aa.sum(axis=0), aa.sum(axis=1)
    i, j = int(np.argmax(col)), int(np.argmax(row))
    x0 = a[:, i] @ a
    bound0 = np.linalg.norm((x0 / np.linalg.norm(x0)) @ a.T)
    x1 = a @ a[j, :]
    bound1 = np.linalg.norm(a.T @ (x1 / np.linalg.norm(x1)))
    return m * (bound0 if col[i] > row[j] else bound1)


def kron_probe(seed, step, shape):
    """The probe V the entry draws at `step` (0-based): its own stream, seeded with (seed, step); the
    first draw decides rebalancing, the next ones are the probe."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + step) * 4)
    u = torch.rand((), generator=gen).item()
    return u, torch.randn(shape, generator=gen, dtype=torch.float64).numpy()


def kron64(p, **hp):
    from optimizers.kron import _kron_class
    return _kron_class()([p], precondition_dtype=torch.float64, **hp)


def test_kron_diagonal_factor_two_steps_match_the_equations():
    r = rng(5)
    lr, mu, seed, lr_p, tiny = 0.01, 0.9, 5, 0.1, torch.finfo(torch.bfloat16).tiny
    x = r.normal(size=3)
    grads = [r.normal(size=3) for _ in range(2)]
    (p,) = params64(x)
    opt = kron64(p, lr=lr, momentum=mu, seed=seed, weight_decay=0.1)   # decay: 2+-D tensors only
    q, m = np.ones(3), np.zeros(3)
    for k, g in enumerate(grads):
        m = mu * m + (1 - mu) * g
        mh = m / (1 - mu ** (k + 1))
        _, v = kron_probe(seed, k, 3)
        a, b = q * mh, v / q
        t1, t2 = a * a, b * b
        q = q - lr_p * (t1 - t2) * q / (np.abs(t1 + t2).max() + tiny)
        u = q * q * mh
        u = u * min(1.0, 1.1 / (math.sqrt(np.mean(u * u)) + 1e-6))
        x = x - lr * u

        p.grad = torch.tensor(g)
        opt.step()
        close(p.detach(), x)
        close(opt.state[p]["Q"][0], q)


def test_kron_triangular_factors_two_steps_match_the_equations():
    r = rng(6)
    lr, mu, wd, seed, lr_p = 0.01, 0.9, 0.1, 11, 0.1
    tiny = torch.finfo(torch.bfloat16).tiny
    W = r.normal(size=(2, 3))
    grads = [r.normal(size=(2, 3)) for _ in range(2)]
    (p,) = params64(W)
    opt = kron64(p, lr=lr, momentum=mu, seed=seed, weight_decay=wd)
    Q1, Q2, M = np.eye(2), np.eye(3), np.zeros_like(W)
    for k, G in enumerate(grads):
        u, V = kron_probe(seed, k, (2, 3))
        assert u >= 0.01   # no rebalancing at these steps (it happens with probability 0.01)
        M = mu * M + (1 - mu) * G
        Mh = M / (1 - mu ** (k + 1))
        A = Q1 @ Mh @ Q2.T
        # B = Q1^-T V Q2^-1; the library solves these triangular systems in float32
        f32 = lambda a: a.astype(np.float32).astype(np.float64)   # noqa: E731
        B = np.linalg.solve(f32(Q1.T), f32(V))
        B = np.linalg.solve(Q2.T, B.T).T
        new = []
        for Q, (t1, t2) in ((Q1, (A @ A.T, B @ B.T)), (Q2, (A.T @ A, B.T @ B))):
            new.append(Q - np.triu(lr_p * (t1 - t2)) / (norm_lower_bound(t1 + t2) + tiny) @ Q)
        Q1, Q2 = new
        U = Q1.T @ Q1 @ Mh @ Q2.T @ Q2
        U = U * min(1.0, 1.1 / (math.sqrt(np.mean(U * U)) + 1e-6))
        W = W - lr * (U + wd * W)

        p.grad = torch.tensor(G)
        opt.step()
        # step 1: Q = I, so the float32 solve only rounds V (done above): float64 precision;
        # step 2: the float32 triangular solve with Q != I rounds B at ~1e-7 relative
        rtol = RTOL if k == 0 else F32_RTOL
        close(opt.state[p]["Q"][0], Q1, rtol=rtol)
        close(p.detach(), W, rtol=rtol)


def test_kron_draws_from_its_own_stream():
    r = rng(7)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    (p,) = params64(r.normal(size=(3, 3)))
    opt = build_optimizer("kron", [("w", p)])
    p.grad = torch.ones(3, 3, dtype=torch.float64)
    opt.step()
    assert torch.equal(torch.get_rng_state(), before)   # the global generator is left as it was


def test_kron_einsums_are_ordered_by_opt_einsum():
    # without opt_einsum, torch.einsum contracts Kron's 5-operand expressions left to right through
    # a prod(d_i^2)-element intermediate (see optimizers/kron.py): a dependency, checked here
    assert torch.backends.opt_einsum.is_available()
