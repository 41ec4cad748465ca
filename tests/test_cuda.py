"""CUDA paths: run on a GPU machine, skipped without one (CI has none; tests/test_device.py runs the
same control flow on a simulated device). On a GPU, OPTBENCH_REQUIRE_CUDA=1 turns the skips into
failures, so a machine whose CUDA does not load cannot pass silently:

    OPTBENCH_REQUIRE_CUDA=1 python -m pytest tests/test_cuda.py -m cuda
"""
import os

import pytest
import torch

import optimizers
from workflows.engine.device import StepTimer
from workflows.engine.harness import RunConfig, train

REQUIRED = os.environ.get("OPTBENCH_REQUIRE_CUDA") == "1"


def _needs_cuda():
    if torch.cuda.is_available():
        return
    why = f"needs a CUDA device (torch {torch.__version__}, built for CUDA {torch.version.cuda})"
    if REQUIRED:
        pytest.fail(f"OPTBENCH_REQUIRE_CUDA=1: {why}")
    pytest.skip(why)


@pytest.fixture(autouse=True)
def cuda_device(request):
    """Every test needs CUDA but the CPU arm of one parametrised over the device."""
    spec = getattr(request.node, "callspec", None)
    if not (spec and spec.params.get("device") == "cpu"):
        _needs_cuda()


pytestmark = [pytest.mark.cuda]


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_step_timer_times_every_step(device):
    timer = StepTimer(device)
    a = torch.randn(512, 512, device=device)
    for _ in range(3):
        with timer:
            a = a @ a / 512
    times = timer.times()
    assert len(times) == 3 and all(t > 0 for t in times)


def test_run_on_cuda_records_peak_memory_and_matches_memory_model():
    r = train(RunConfig("lm-stdlib", "adamw", size="smoke", device="cuda", steps=5))
    assert r["environment"]["device"] == "cuda" and r["environment"]["cuda"]
    assert r["peak_memory_bytes"] > 0
    assert r["state_bytes"]["measured"] == r["state_bytes"]["model"]


@pytest.mark.parametrize("name,torch_cls", [("adamw-ref", torch.optim.AdamW), ("adafactor-ref", torch.optim.Adafactor)])
def test_reference_on_cuda_matches_torch(name, torch_cls):
    """This project's reference implementations run on a CUDA tensor and hold to torch's own there."""
    p1 = torch.nn.Parameter(torch.randn(64, 32, device="cuda", dtype=torch.float64,
                                        generator=torch.Generator("cuda").manual_seed(0)))
    p2 = torch.nn.Parameter(p1.detach().clone())
    ours = optimizers.build_optimizer(name, [("w", p1)])
    theirs = torch_cls([p2], lr=ours.defaults["lr"], weight_decay=ours.defaults["weight_decay"])
    for k in range(10):
        g = torch.randn(p1.shape, device="cuda", dtype=torch.float64, generator=torch.Generator("cuda").manual_seed(k + 1))
        p1.grad, p2.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
    torch.testing.assert_close(p1, p2, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name", ["adam8bit", "adamw8bit"])
def test_bitsandbytes_8bit_on_cuda(name):
    model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Linear(256, 8)).cuda()
    named = list(model.named_parameters())
    opt = optimizers.build_optimizer(name, named)
    for _ in range(3):
        model(torch.randn(32, 256, device="cuda")).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    assert optimizers.state_bytes(opt) == optimizers.model_state_bytes(name, named)


@pytest.mark.parametrize("name", ["muon", "muonclip"])
def test_muon_family_on_the_lm(name):
    r = train(RunConfig("lm-stdlib", name, size="smoke", device="cuda", steps=10))
    assert not r["diverged"] and r["curves"]["loss"][-1] < r["curves"]["loss"][0]


def test_fp16_autocast_with_grad_scaler_steps():
    model = torch.nn.Linear(64, 64).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda")
    for _ in range(5):
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model(torch.randn(16, 64, device="cuda")).float().pow(2).mean()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
    assert scaler.get_scale() > 0


def test_activation_checkpointing_lowers_peak_memory_on_the_lm():
    plain = train(RunConfig("lm-stdlib", "adamw", size="cpu", device="cuda", steps=3))
    ckpt = train(RunConfig("lm-stdlib", "adamw", size="cpu", device="cuda", steps=3, activation_checkpointing=True))
    assert ckpt["peak_memory_bytes"] < plain["peak_memory_bytes"]
    assert ckpt["curves"]["loss"] == pytest.approx(plain["curves"]["loss"], rel=1e-4)



@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_kron_draws_from_its_own_seeded_stream_on_the_parameters_device(device):
    """Kron's probe comes from a stream of (seed, step) on the parameters' device (the generator
    found through the device's type, optimizers/kron.py): two optimizers of one seed take the same
    steps, and the global generators (the CPU's and the device's) are left as they were."""
    start = torch.linspace(-1, 1, 16 * 8).reshape(16, 8)

    def rng():
        return [torch.get_rng_state()] + ([torch.get_device_module(device).get_rng_state()] if device != "cpu" else [])

    def steps(seed):
        p = torch.nn.Parameter(start.clone().to(device))
        opt = optimizers.build_optimizer("kron", [("w", p)], {**optimizers.get("kron").defaults, "seed": seed})
        for k in range(3):
            p.grad = torch.full_like(p, 1.0 + k)
            opt.step()
        return p.detach().cpu().clone()
    before = rng()
    a, b = steps(1), steps(1)
    assert torch.equal(a, b) and not torch.equal(a, start)
    assert all(torch.equal(x, y) for x, y in zip(before, rng()))
