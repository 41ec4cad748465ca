"""Generic tests over every registered optimizer (``optimizers.names()``).

A new file in ``optimizers/`` is tested here without a test written for it:

1. it builds on a small model (1-D, 2-D and 4-D parameters, an embedding named ``embed``, a
   ``head``, one attention layer) and steps, as a `Composite` where its parameter policy applies;
2. it lowers a convex quadratic and the 2-D Rosenbrock function at its defaults (overrides,
   each with its reason, in ``HP_OVERRIDES``);
3. its measured state equals the registry's analytic ``model_state_bytes`` exactly;
4. saving and loading its state_dict mid-run gives a bit-identical trajectory;
5. invalid hyperparameters (out of range, or of the wrong type or arity for the default) are refused
   by the registry before any library sees them, in one form: ``optimizer 'x': invalid k=v: why; valid: what``.

The training-loop hooks are driven as the harness drives them: ``update_hessian()`` after the
backward of a loss on labels sampled from the model (needs "hessian"), and
``qk_clip(max_logits, qk_weights)`` after every step (needs "attention_logits").
"""
from __future__ import annotations

import copy
import io
import math
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import optimizers
from optimizers import build_optimizer, model_state_bytes, state_bytes
from optimizers._build import Composite, split_parameters

NAMES = optimizers.names()


def gen(*key: int) -> torch.Generator:
    """A generator for one named stream (integers), so every run sees the same batches."""
    return torch.Generator().manual_seed(sum(k * 1_000_003 ** i for i, k in enumerate(key)) % 2**63)


# --------------------------------------------------------------------------------------------
# A small model with every kind of parameter the policies distinguish.

class Tiny(nn.Module):
    """embed (2-D, embedding) -> one attention layer (W_q, W_k: 2 heads of 4) -> mean-pool; a
    4-D conv branch; a wide hidden Linear, LayerNorm (1-D) and a head. ``conv.weight`` (4608
    elements) and ``hidden.weight`` (5120) are above bitsandbytes' 4096-element 8-bit threshold;
    the rest below it."""

    HEADS, HEAD_DIM = 2, 4

    def __init__(self, sparse: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(12, 8, sparse=sparse)
        self.attn_q = nn.Linear(8, 8, bias=False)
        self.attn_k = nn.Linear(8, 8, bias=False)
        self.conv = nn.Conv2d(16, 32, 3)
        self.hidden = nn.Linear(8 + 32, 128)
        self.norm = nn.LayerNorm(128)
        self.head = nn.Linear(128, 5)

    def attention(self, tokens):
        x = self.embed(tokens)
        b, t, _ = x.shape
        q = self.attn_q(x).view(b, t, self.HEADS, self.HEAD_DIM).transpose(1, 2)
        k = self.attn_k(x).view(b, t, self.HEADS, self.HEAD_DIM).transpose(1, 2)
        return q @ k.transpose(-1, -2) / math.sqrt(self.HEAD_DIM), x   # [b, heads, t, t] pre-softmax

    def forward(self, tokens, images):
        logits, x = self.attention(tokens)
        x = (logits.softmax(-1) @ x.unsqueeze(1)).mean(dim=(1, 2))
        c = self.conv(images).mean(dim=(2, 3))
        return self.head(self.norm(torch.tanh(self.hidden(torch.cat([x, c], 1)))))

    @torch.no_grad()
    def max_logits(self, tokens):
        logits, _ = self.attention(tokens)
        return logits.amax(dim=(0, 2, 3))[None]   # [layers=1, heads]

    @property
    def qk_weights(self):
        return [(self.attn_q.weight, self.attn_k.weight, self.HEADS)]


def batch(step, dtype=torch.float32):
    g = gen(step, 1)
    return (torch.randint(12, (4, 5), generator=g),
            torch.randn(4, 16, 5, 5, generator=g).to(dtype),
            torch.randint(5, (4,), generator=g))


def make(name, dtype=torch.float32, hparams=None):
    spec = optimizers.get(name)
    model = Tiny(sparse="sparse" in spec.needs).to(dtype)
    return spec, model, build_optimizer(name, list(model.named_parameters()), hparams)


def train(spec, model, opt, start, steps, dtype=torch.float32):
    """The harness's loop, hooks included (Sophia's estimate every 2nd step, to exercise it)."""
    for step in range(start, start + steps):
        tokens, images, labels = batch(step, dtype)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(tokens, images), labels).backward()
        opt.step()
        if "hessian" in spec.needs and step % 2 == 0:
            opt.zero_grad(set_to_none=True)
            out = model(tokens, images)
            sampled = torch.multinomial(out.detach().softmax(-1), 1, generator=gen(step, 2)).squeeze(1)
            F.cross_entropy(out, sampled).backward()
            opt.update_hessian()
            opt.zero_grad(set_to_none=True)
        if "attention_logits" in spec.needs:
            opt.qk_clip(model.max_logits(tokens), model.qk_weights)


# --------------------------------------------------------------------------------------------
# 1. builds and steps

@pytest.mark.parametrize("name", NAMES)
def test_builds_and_steps(name):
    spec, model, opt = make(name)
    named = list(model.named_parameters())
    taken, rest = split_parameters(spec, named)
    assert isinstance(opt, Composite) == bool(taken and rest)
    if spec.takes is not None:
        assert taken, f"{name}'s policy takes no parameter of the test model"
    # every parameter in exactly one group
    in_groups = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(in_groups) == sorted(id(p) for _, p in named)
    assert spec.lr_range[0] <= spec.defaults["lr"] <= spec.lr_range[1]
    assert spec.version != "unknown"

    before = [p.detach().clone() for _, p in named]
    train(spec, model, opt, 0, 3)
    for (n, p), p0 in zip(named, before):
        assert torch.isfinite(p).all(), n
        assert not torch.equal(p, p0), f"{name} did not move {n}"


@pytest.mark.parametrize("name", [n for n in NAMES if optimizers.get(n).family == "muon"])
def test_muon_leaves_embedding_head_and_vectors_to_its_fallback(name):
    # Muon orthogonalises hidden matrices only: an embedding's rows and the head's columns are
    # not a linear map between hidden spaces (Jordan et al. 2024), and 1-D tensors have no matrix
    # to orthogonalise; a conv filter is one, flattened to out x (in kh kw) (Jordan's speedrun).
    spec = optimizers.get(name)
    taken, rest = split_parameters(spec, list(Tiny().named_parameters()))
    assert {n for n, _ in taken} == {"attn_q.weight", "attn_k.weight", "hidden.weight", "conv.weight"}
    assert {n for n, _ in rest} >= {"embed.weight", "head.weight", "norm.weight"}


def test_muon_on_a_conv_filter_is_torch_muon_on_its_flattened_matrix():
    # The same code path on the same numbers in the same process: exact equality is the claim
    # (optimizers/muon.py hands torch.optim.Muon views; nothing is recomputed differently).
    from optimizers.muon import Muon
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 4, 3, 3, generator=g)
    grads = [torch.randn(6, 4, 3, 3, generator=g) for _ in range(3)]
    ours, theirs = w.clone().requires_grad_(), w.clone().view(6, -1).requires_grad_()
    a, b = Muon([ours], lr=0.02, adjust_lr_fn="match_rms_adamw"), torch.optim.Muon([theirs], lr=0.02, adjust_lr_fn="match_rms_adamw")
    for grad in grads:
        ours.grad, theirs.grad = grad.clone(), grad.view(6, -1).clone()
        a.step(), b.step()
    assert torch.equal(ours.detach().view(6, -1), theirs.detach())
    assert a.state[ours]["momentum_buffer"].shape == ours.shape   # the state keeps the tensor's shape
    # a 2-D tensor: torch.optim.Muon's numbers, bit for bit
    m = w.view(6, -1)
    ours, theirs = m.clone().requires_grad_(), m.clone().requires_grad_()
    a, b = Muon([ours], lr=0.02), torch.optim.Muon([theirs], lr=0.02)
    for grad in grads:
        ours.grad, theirs.grad = grad.view(6, -1).clone(), grad.view(6, -1).clone()
        a.step(), b.step()
    assert torch.equal(ours, theirs)


def test_muon_refuses_a_vector_and_a_channels_last_filter_by_name():
    from optimizers.muon import Muon
    with pytest.raises(ValueError, match=r"shape \(5,\) is not valid; valid: tensors of 2 or more"):
        Muon([torch.zeros(5, requires_grad=True)])
    cl = torch.zeros(2, 3, 3, 3).to(memory_format=torch.channels_last).requires_grad_()
    with pytest.raises(ValueError, match="non-contiguous layout .* valid: contiguous tensors"):
        Muon([cl])


# --------------------------------------------------------------------------------------------
# 2. lowers a convex quadratic and Rosenbrock within a fixed budget

STEPS = 300

# Per-entry hyperparameter overrides for the two toy problems, each with why. Everything else
# runs at its registry defaults.
HP_OVERRIDES = {
    # Rosenbrock's curvature at (-1.2, 1) is ~1e3: plain gradient steps are stable only for
    # lr < 2/L ~ 2e-3, below SGD's default 1e-2 (which diverges there).
    ("sgd", "rosenbrock"): {"lr": 1e-3},
    ("momentum", "rosenbrock"): {"lr": 1e-3},
    ("nesterov", "rosenbrock"): {"lr": 1e-3},
    # Sign-type updates move each coordinate by at most lr per step; their default lr (1e-4, sized
    # for networks, 10x below Adam's) moves at most 0.03 in 300 steps, less than the distances here.
    ("lion", "quadratic"): {"lr": 1e-3},
    ("lion", "rosenbrock"): {"lr": 1e-3},
    # Shampoo's roots are float32 SVDs: with the default matrix_eps 1e-6 the first statistic
    # eps*I + g g^T (|g|^2 ~ 5e4 here) has its small singular value below float32 resolution and
    # the result depends on SVD round-off (see optimizers/shampoo.py); 1e-2 is resolved.
    ("shampoo", "rosenbrock"): {"matrix_eps": 1e-2},
    # Sophia as Lion; and bs=1 because the toy Hessian estimate below is one sample (g = J^T u).
    ("sophia", "quadratic"): {"lr": 1e-3, "bs": 1},
    ("sophia", "rosenbrock"): {"lr": 1e-3, "bs": 1},
}


def toy_problem(kind, sparse):
    """(named params, value(), residual(x)) with f = 0.5 ||r(x)||^2. With ``sparse`` the parameter
    is an embedding table read through a sparse lookup (for entries that take only such tables)."""
    g = gen(7, 7)
    if kind == "quadratic":   # f = 0.5 sum h (W - W*)^2, h in [1, 10], W a 6x6 matrix
        shape = (6, 6)
        h = torch.exp(torch.rand(shape, generator=g) * math.log(10.0))
        init = torch.randn(shape, generator=g)
        target = init + 0.1 * torch.randn(shape, generator=g)

        def residual(x):
            return h.sqrt() * (x - target)
        name = "weight"
    else:                     # Rosenbrock (1 - x)^2 + 100 (y - x^2)^2 from (-1.2, 1)
        shape = (2,)
        init = torch.tensor([-1.2, 1.0])

        def residual(x):
            return torch.stack([math.sqrt(2.0) * (1 - x[0]), math.sqrt(200.0) * (x[1] - x[0] ** 2)])
        name = "x"
    if sparse:
        w = nn.Parameter(init.reshape(shape[0], -1).clone())
        rows = torch.arange(shape[0])
        return [("embed.weight", w)], (lambda: F.embedding(rows, w, sparse=True).reshape(shape)), residual
    w = nn.Parameter(init.clone())
    return [(name, w)], (lambda: w), residual


@pytest.mark.parametrize("kind", ["quadratic", "rosenbrock"])
@pytest.mark.parametrize("name", NAMES)
def test_lowers_toy_loss(name, kind):
    spec = optimizers.get(name)
    hp = HP_OVERRIDES.get((name, kind))
    named, value, residual = toy_problem(kind, sparse="sparse" in spec.needs and spec.takes is not None)
    opt = build_optimizer(name, named, hp)
    full_hp = spec.hparams(hp)

    def f():
        return 0.5 * residual(value()).pow(2).sum()

    f0 = f().item()
    noise = gen(7, 8)
    for step in range(STEPS):
        opt.zero_grad(set_to_none=True)
        f().backward()
        opt.step()
        if "hessian" in spec.needs and step % spec.hessian_every == 0:
            # Gauss-Newton-Bartlett on f = 0.5||r||^2: the gradient of r.u, u ~ N(0, I), has
            # E[g g] = diag(J^T J); scaled by 1/sqrt(bs) as a mean over bs samples would be.
            opt.zero_grad(set_to_none=True)
            r = residual(value())
            ((r * torch.randn(r.shape, generator=noise)).sum() / math.sqrt(full_hp["bs"])).backward()
            opt.update_hessian()
            opt.zero_grad(set_to_none=True)
    final = f().item()
    assert math.isfinite(final)
    assert final <= 0.5 * f0, f"{name} on {kind}: {f0:.4g} -> {final:.4g} in {STEPS} steps"


# --------------------------------------------------------------------------------------------
# 3. measured state == analytic model

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16],
                         ids=["float32", "float64", "bfloat16"])
@pytest.mark.parametrize("name", NAMES)
def test_state_bytes_match_model(name, dtype):
    spec, model, opt = make(name, dtype)
    named = list(model.named_parameters())
    assert {p.ndim for _, p in named} >= {1, 2, 4}
    assert max(p.numel() for _, p in named) > 4096
    train(spec, model, opt, 0, 3, dtype)
    measured = state_bytes(opt)
    modelled = model_state_bytes(name, named, spec.hparams())
    assert measured == modelled, (
        f"{name}: measured {measured} B, model {modelled} B")


# --------------------------------------------------------------------------------------------
# 4. state_dict round trip: bit-identical continuation

@pytest.mark.parametrize("name", NAMES)
def test_state_dict_resume_is_bit_identical(name):
    spec, model, opt = make(name)
    train(spec, model, opt, 0, 3)
    model_snapshot = copy.deepcopy(model.state_dict())
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    train(spec, model, opt, 3, 3)

    spec, resumed, _ = make(name)
    resumed.load_state_dict(model_snapshot)
    opt2 = build_optimizer(name, list(resumed.named_parameters()))
    buf.seek(0)
    opt2.load_state_dict(torch.load(buf, weights_only=True))
    train(spec, resumed, opt2, 3, 3)
    # Same process, same kernels: bit-equal, NaN included (Shampoo's matrix roots can reach NaN in
    # six steps at its defaults under some kernels, e.g. ATEN_CPU_CAPABILITY=avx2 with 2 threads;
    # resume must reproduce that too, and torch.equal calls NaN unequal to itself)
    for (n, a), (_, b) in zip(model.named_parameters(), resumed.named_parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True,
                                   msg=lambda m: f"{name}: {n} differs after resuming: {m}")


# --------------------------------------------------------------------------------------------
# 5. invalid hyperparameters are refused by name and value

# Entry-specific bad values, beyond the generic ones below.
EXTRA_INVALID = {
    "adafactor": [("beta2_decay", 0.5), ("d", 0.5), ("eps1", "tiny")],
    "adafactor-ref": [("beta2_decay", 0.5), ("d", 0.5), ("eps1", "tiny")],
    "adafactor-hf": [("clip_threshold", 0.0), ("decay_rate", 0.5)],
    "adagrad": [("lr_decay", -1.0), ("initial_accumulator_value", -1.0)],
    "rmsprop": [("alpha", 1.0), ("alpha", -0.5)],
    "nadam": [("momentum_decay", -1.0)],
    "nesterov": [("momentum", 0.0)],   # torch.optim.SGD: "Nesterov momentum requires a momentum"
    "shampoo": [("matrix_eps", 0.0), ("preconditioning_compute_steps", 0)],
    "sophia": [("rho", 0.0), ("rho", -0.04), ("bs", 0)],
    "muon": [("ns_steps", 0), ("adjust_lr_fn", "bogus"), ("adjust_lr_fn", 1)],
    "muonclip": [("ns_steps", 0), ("adjust_lr_fn", "bogus"), ("tau", "high")],
}


def invalid_cases(name):
    defaults = optimizers.get(name).defaults
    cases = [("lr", -1e-3), ("lr", 0.0), ("lr", float("nan")), ("lr", float("inf"))]
    if "betas" in defaults:
        cases += [("betas", (0.9, 1.0)), ("betas", (-0.1, 0.999))]
    for key in ("eps", "eps1", "eps2"):
        if key in defaults:
            cases += [(key, 0.0), (key, -1e-8)]
    if "weight_decay" in defaults:
        cases.append(("weight_decay", -0.1))
    if "momentum" in defaults:
        cases.append(("momentum", 1.0))
    if "tau" in defaults:
        cases += [("tau", 0.0), ("tau", -1.0)]
    return [(name, key, value) for key, value in cases + EXTRA_INVALID.get(name, [])]


def wrong_type_cases(name):
    """Values of the wrong type or arity for every hyperparameter, derived from its default."""
    spec = optimizers.get(name)
    cases = []
    for key, default in spec.defaults.items():
        if isinstance(default, bool):
            cases += [(key, 1), (key, "yes"), (key, None)]
        elif isinstance(default, int):
            cases += [(key, 1.5), (key, 2.0), (key, "3"), (key, True), (key, None)]
        elif isinstance(default, float) or (default is None and key.startswith("eps")):
            cases += [(key, "abc"), (key, True), (key, (0.1,)), (key, float("inf"))]
            if default is not None:
                cases.append((key, None))
        elif isinstance(default, tuple):
            n = len(default)
            cases += [(key, "abc"), (key, 0.9), (key, default[:-1]), (key, default + (0.5,)),
                      (key, ("a",) * n), (key, (True,) * n), (key, {"b1": 0.9}), (key, None)]
        elif isinstance(default, str):
            cases += [(key, 3), (key, default.upper())]
    return [(name, key, value) for key, value in cases]


def assert_registry_refuses(name, key, value):
    """spec.hparams refuses it with the one message form, and building refuses it with the same
    message: the registry catches it before any library (or our own classes) sees it."""
    spec = optimizers.get(name)
    with pytest.raises(optimizers.HparamError) as err:
        spec.hparams({key: value})
    message = str(err.value)
    assert message.startswith(f"optimizer {name!r}: invalid {key}={value!r}: "), message
    why, _, valid = message[len(f"optimizer {name!r}: invalid {key}={value!r}: "):].partition("; valid: ")
    assert why and valid and "\n" not in message, message
    with pytest.raises(optimizers.HparamError) as built:
        build_optimizer(name, list(Tiny().named_parameters()), {key: value})
    assert str(built.value) == message


@pytest.mark.parametrize("name,key,value", [c for n in NAMES for c in invalid_cases(n)],
                         ids=lambda x: repr(x) if not isinstance(x, str) else x)
def test_invalid_hyperparameter_refused(name, key, value):
    assert_registry_refuses(name, key, value)


@pytest.mark.parametrize("name,key,value", [c for n in NAMES for c in wrong_type_cases(n)],
                         ids=lambda x: repr(x) if not isinstance(x, str) else x)
def test_wrong_type_or_arity_refused(name, key, value):
    assert_registry_refuses(name, key, value)


def test_messages_say_why_and_what_is_valid():
    adam = optimizers.get("adam")
    cases = {
        "abc": "invalid betas='abc': a string, not 2 numbers; valid: 2 numbers, each in [0, 1)",
        (0.9,): "invalid betas=(0.9,): 1 value, not 2; valid: 2 numbers, each in [0, 1)",
        (0.9, 0.99, 0.5): "invalid betas=(0.9, 0.99, 0.5): 3 values, not 2; valid:",
        (0.9, 1.0): "invalid betas=(0.9, 1.0): betas[1]=1.0 is out of range; valid:",
    }
    for value, expected in cases.items():
        with pytest.raises(optimizers.HparamError, match=re.escape(expected)):
            adam.hparams({"betas": value})
    with pytest.raises(optimizers.HparamError, match=re.escape("invalid eps='abc': a string, not a number; "
                                                               "valid: a finite number > 0 (default 1e-08)")):
        adam.hparams({"eps": "abc"})
    with pytest.raises(optimizers.HparamError, match=re.escape("invalid not_a_hyperparameter=1: no such "
                                                               "hyperparameter; valid: beta2, betas, eps, lr, weight_decay")):
        adam.hparams({"not_a_hyperparameter": 1})


def test_valid_values_pass_and_lists_become_tuples():
    assert optimizers.get("adam").hparams({"betas": [0.5, 0.999], "lr": 1})["betas"] == (0.5, 0.999)
    assert optimizers.get("adafactor").hparams({"eps1": None})["eps1"] is None
    assert optimizers.get("muon").hparams({"adjust_lr_fn": None})["adjust_lr_fn"] is None
    assert optimizers.get("nesterov").hparams({"momentum": 0.0, "nesterov": False})["momentum"] == 0.0


def test_an_entry_whose_defaults_break_its_rules_is_refused_when_declared():
    common = dict(name="x", family="x", paper="-", implementation="ours", build=torch.optim.SGD,
                  state_bytes=lambda shape, dtype: 0)
    with pytest.raises(optimizers.HparamError, match="invalid lr=-1.0"):
        optimizers.OptimizerSpec(defaults=dict(lr=-1.0), **common)
    with pytest.raises(ValueError, match="imply no type"):
        optimizers.OptimizerSpec(defaults=dict(lr=1e-3, clip=None), **common)
    with pytest.raises(ValueError, match="not in its defaults"):
        optimizers.OptimizerSpec(defaults=dict(lr=1e-3), hparam_rules=dict(alpha=optimizers.above(0)), **common)
    spec = optimizers.OptimizerSpec(defaults=dict(lr=1e-3, clip=None),
                                    hparam_rules=dict(clip=optimizers.above(0, kind="real", none=True)), **common)
    assert spec.hparams({"clip": 2})["clip"] == 2
    with pytest.raises(optimizers.HparamError, match=r"invalid clip='2': a string, not a number; valid: a finite "
                                                     r"number > 0, or None \(default None\)"):
        spec.hparams({"clip": "2"})


@pytest.mark.parametrize("name", NAMES)
def test_unknown_hyperparameter_refused(name):
    with pytest.raises(ValueError, match="not_a_hyperparameter"):
        build_optimizer(name, list(Tiny().named_parameters()), {"not_a_hyperparameter": 1})
