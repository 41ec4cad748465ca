"""The training-loop hooks optimizers need: MuonClip's QK-clip on a real Transformer, Sophia's
Hessian estimate every k steps, both as the harness runs them; and the monitor's reading of every
registry entry's state."""
import math

import pytest
import torch

import optimizers
import tasks
from workflows.engine import pairs
from tasks.lm import replay_attention_logits
from workflows.engine import harness
from workflows.engine.harness import RunConfig, train

TAU = 0.3
LM = dict(task="lm-stdlib", size="smoke", seed=0, steps=12)

# Float32 rounding of the guarantee MuonClip's docstring states (u = 2^-24). The clip computes
# gamma = tau / S in float64 from the measured float32 max S (exact to 1e-16) and multiplies head
# h's rows of W_q and W_k by sqrt(gamma) rounded to float32, each product rounded again: 2u per
# weight. Replayed on the same inputs, each side's projection is a dot product over D = 32 inputs
# (at most D·u, relative to the sum of |terms|, Higham's gamma_n) and RoPE adds 2 terms (2u), so q
# and k each carry (D + 4)·u; the logit adds a dot product over d = 16 and the 1/sqrt(d) product:
# (2D + d + 9)·u for the replayed logit against exact arithmetic on the clipped weights, and
# (2D + d + 3)·u for the measured S that gamma came from. The replayed max can exceed tau by at most
# (4D + 2d + 12)·u ≈ 172·u ≈ 1.0e-5 times kappa = (sum of |q_c·k_c| over the max logit's
# products) / logit. The max logit is where a query and a key align (its terms mostly add up), so
# kappa is O(1); 1e-4 leaves room for kappa up to 10, on any CPU (the bound does not depend on how
# a machine orders its sums). What this machine gives is about 3e-7. A clip computed from other
# logits than the layer's own (the bug this guards against: 0.3006 at tau 0.3) is 2e-3 off.
ROUNDING = 1e-4


class QKProbe:
    """Hooks for `train`: after each step (QK-clip included), the max logits of a fresh forward
    and, for MuonClip, of each layer replayed on the inputs the clip's measurement gave it."""

    def __init__(self):
        self.inputs, self.measured, self.replayed, self.fresh = {}, [], [], []

    def start(self, info):
        problem = info.problem
        measure = problem.attention_logits

        def measuring(model, batch):        # the harness's measurement, its layer inputs kept
            logits = measure(model, batch, inputs=self.inputs)
            self.measured.append(logits.clone())
            return logits

        self.measure = measure
        problem.attention_logits = measuring

    def step(self, info):
        if self.inputs:
            self.replayed.append(replay_attention_logits(info.model, self.inputs))
        self.fresh.append(self.measure(info.model, info.batch))


def run(optimizer, hparams):
    probe = QKProbe()
    record = train(RunConfig(optimizer=optimizer, hparams=hparams, **LM),
                   hooks={"start": probe.start, "step": probe.step})
    assert not record["diverged"], record["diverge_reason"]
    return probe


def test_muonclip_bounds_each_layer_on_the_inputs_it_measured_where_muon_exceeds_tau():
    """MuonClip's guarantee (see its docstring), checked on the LM as the harness runs it: after
    every step's clip, each layer's heads, measured again on the inputs that layer had when the
    clip measured, are <= tau up to float32 rounding; layer 0 (whose inputs no query or key weight
    changes) is <= tau in a fresh forward too. Muon, the same run without the clip, ends with
    logits far above tau (about 0.73 here; 0.45 leaves room for other CPUs' rounding, which moves
    a 12-step run by a few per cent)."""
    muon = run("muon", {"lr": 0.05})
    assert max(float(m.max()) for m in muon.fresh) > 1.5 * TAU

    clip = run("muonclip", {"lr": 0.05, "tau": TAU})
    steps = LM["steps"]
    assert len(clip.measured) == len(clip.replayed) == len(clip.fresh) == steps
    # the clip had work to do: the updated weights' logits went well past tau (0.46 here)
    assert max(float(m.max()) for m in clip.measured) > 1.1 * TAU
    for step in range(steps):
        replayed, fresh = clip.replayed[step], clip.fresh[step]
        assert float(replayed.max()) <= TAU * (1 + ROUNDING), (step, replayed)
        assert float(fresh[0].max()) <= TAU * (1 + ROUNDING), (step, fresh[0])
        # heads the clip left alone keep their measured logits (same inputs, same weights)
        untouched = clip.measured[step] <= TAU
        assert torch.allclose(replayed[untouched], clip.measured[step][untouched], rtol=ROUNDING, atol=0)


def test_sophia_hessian_hook_runs_every_k_steps_with_the_steps_own_stream(monkeypatch):
    calls = []
    real = harness._update_hessian

    def counting(opt, model, problem, batch, generator):
        calls.append(generator.initial_seed())
        return real(opt, model, problem, batch, generator)

    monkeypatch.setattr(harness, "_update_hessian", counting)
    k = optimizers.get("sophia").hessian_every
    train(RunConfig("cnn-digits", "sophia", steps=2 * k + 1))
    assert calls == [tasks.generator(0, f"hessian:{s}").initial_seed() for s in (0, k, 2 * k)]


# --- the monitor reads every optimizer's state ----------------------------------------------------

def monitored(name, steps=3):
    """Rows of a short monitored run of entry `name` on the smoke LM (every entry can run it but
    the sparse-only ones, which get the sparse embedding task)."""
    spec = optimizers.get(name)
    task = "lm-stdlib" if pairs.compatible("lm-stdlib", spec) is None else "embeddings-zipf-sparse"
    record = train(RunConfig(task=task, optimizer=name, size="smoke", steps=steps, monitor_every=1))
    assert not record["diverged"], record["diverge_reason"]
    return record["monitor"]


@pytest.mark.parametrize("name", optimizers.names())
def test_monitor_gives_every_entry_moments_or_a_reason(name):
    rows = monitored(name)
    assert rows
    for row in rows:
        for kind in ("m", "v"):
            value, source = row[f"{kind}_abs_mean"], row[f"{kind}_from"]
            if math.isnan(value):
                assert source.startswith("not available: ") and len(source) > len("not available: ") + 10, row
            else:
                assert math.isfinite(value) and value >= 0 and not source.startswith("not available"), row


# Entries whose state holds both moments in a form other than exp_avg / exp_avg_sq (factored,
# quantised, accumulated, a preconditioner statistic): each must be read, not reported absent.
READ = {"adafactor": ("v",), "adafactor-hf": ("v",), "adam8bit": ("m", "v"), "adagrad": ("v",),
        "rmsprop": ("v",), "shampoo": ("v",), "lion": ("m",), "muon": ("m",), "kron": ("m",),
        "soap": ("m", "v"), "sophia": ("m",), "momentum": ("m",)}
ABSENT = {"sgd": ("m", "v"), "adafactor": ("m",), "lion": ("v",), "kron": ("v",), "sophia": ("v",), "shampoo": ("m",),
          "schedulefree-adamw": ("m",)}


@pytest.mark.parametrize("name", sorted(set(READ) | set(ABSENT)))
def test_monitor_reads_the_moments_each_state_holds(name):
    rows = monitored(name)
    for kind in READ.get(name, ()):
        assert any(math.isfinite(r[f"{kind}_abs_mean"]) for r in rows), (kind, rows[0])
    for kind in ABSENT.get(name, ()):
        # every group of the entry's own part lacks it (group 0: the entry's part comes first)
        assert math.isnan(rows[0][f"{kind}_abs_mean"]), (kind, rows[0])


def test_monitor_dequantises_8bit_state_as_bitsandbytes_does():
    """An 8-bit Adam state (a tensor of 4096+ elements) read by the monitor equals bitsandbytes'
    own dequantize_blockwise, to float32 rounding of one product (code × absmax)."""
    from bitsandbytes.functional import dequantize_blockwise
    from workflows.engine.monitor import BNB_BLOCK, moments
    p = torch.nn.Parameter(torch.randn(64, 100, generator=torch.Generator().manual_seed(0)))
    opt = optimizers.build_optimizer("adam8bit", [("w", p)])
    for k in range(3):
        p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(k + 1))
        opt.step()
    st = opt.state[p]
    assert st["state1"].dtype == torch.uint8
    got = moments(st, p, "adam8bit")
    for kind, i in (("m", 1), ("v", 2)):
        ref = dequantize_blockwise(st[f"state{i}"], absmax=st[f"absmax{i}"], code=st[f"qmap{i}"],
                                   blocksize=BNB_BLOCK)
        total, label = got[kind]
        assert "dequantised" in label
        assert math.isclose(total, float(ref.abs().sum()), rel_tol=1e-5)


def test_monitor_factored_adafactor_mean_is_the_reconstruction_mean():
    """torch Adafactor's v̂ = row_var·col_var / mean(row_var); the monitor's mean is mean(col_var),
    which must equal the mean of the full reconstruction (to float32 summation rounding)."""
    from workflows.engine.monitor import moments
    p = torch.nn.Parameter(torch.randn(6, 9))
    opt = optimizers.build_optimizer("adafactor", [("w", p)])
    for k in range(2):
        p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(k))
        opt.step()
    st = opt.state[p]
    full = st["row_var"] @ st["col_var"] / st["row_var"].mean(dim=-2, keepdim=True)
    total, _ = moments(st, p, "adafactor")["v"]
    assert math.isclose(total / p.numel(), float(full.mean()), rel_tol=1e-5)
