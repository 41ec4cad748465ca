"""The training-loop hooks optimizers need: MuonClip's QK-clip on a real Transformer, Sophia's
Hessian estimate every k steps, both as the harness runs them."""
import torch

import optimizers
import tasks
from tasks.lm import replay_attention_logits
from tasks.runner import harness
from tasks.runner.harness import RunConfig, train

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
