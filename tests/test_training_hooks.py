"""The training-loop hooks optimizers need: MuonClip's QK-clip on a real Transformer, Sophia's
Hessian estimate every k steps."""
import torch

import optimizers
import tasks
from tasks.runner import harness
from tasks.runner.harness import RunConfig, train


def max_logits_per_step(name, hparams, steps=12):
    problem = tasks.get("lm-stdlib").make("smoke", seed=0)
    model = problem.model
    opt = optimizers.build_optimizer(name, model.named_parameters(), hparams)
    seen = []
    for step in range(steps):
        batch = problem.batch(step)
        opt.zero_grad()
        problem.loss(model, batch).backward()
        opt.step()
        with torch.no_grad():
            if name == "muonclip":
                opt.qk_clip(problem.attention_logits(model, batch), problem.qk_weights)
            seen.append(problem.attention_logits(model, batch))
    return seen


def test_muonclip_keeps_every_head_under_tau_where_muon_exceeds_it():
    tau = 0.3
    muon = max_logits_per_step("muon", {"lr": 0.05})
    assert max(float(m.max()) for m in muon) > tau  # the same run without the clip goes past tau
    clipped = max_logits_per_step("muonclip", {"lr": 0.05, "tau": tau})
    for step, logits in enumerate(clipped):
        assert float(logits.max()) <= tau * (1 + 1e-3), f"step {step}: {logits.max():.4f} > tau"


def test_sophia_hessian_hook_runs_every_k_steps(monkeypatch):
    calls = []
    real = harness._update_hessian

    def counting(opt, model, problem, batch):
        calls.append(True)
        return real(opt, model, problem, batch)

    monkeypatch.setattr(harness, "_update_hessian", counting)
    k = optimizers.get("sophia").hessian_every
    train(RunConfig("cnn-digits", "sophia", steps=2 * k + 1))
    assert len(calls) == 3  # steps 0, k and 2k
