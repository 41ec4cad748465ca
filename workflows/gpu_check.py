"""The GPU check: what the next GPU run needs to know, measured on a lent GPU in a few minutes.

    python -m workflows.gpu_check DIR [BUDGET_S]     # on a CUDA machine (default 420 s in all)
    python -m workflows.gpu_check DIR dry            # the same control flow on the CPU, tiny sizes
    bash workflows/gpu_check.sh [BUDGET_S]           # on a GPU machine without a registry: install, run, pack

Each step runs under its own time budget and writes DIR/<step>.json as soon as it ends (long steps
also after each measurement), and one line to DIR/summary.jsonl and to stdout, so a check stopped
at its limit keeps what it measured. The steps (`STEPS`):

- environment: the record's environment block on the device (`device.facts()`: GPU, capability,
  driver, CUDA, cuDNN, fp32 precision and determinism in effect), the package versions, nvidia-smi;
- bitsandbytes: the library loads, and three 8-bit AdamW steps on the device keep the state the
  memory model states;
- cuda_tests: `pytest tests/test_cuda.py` with OPTBENCH_REQUIRE_CUDA=1 (a skip is a failure), its
  junit XML in DIR/cuda_tests.xml;
- calibration: `plan.calibrate` of the gpu profile's tasks at its size on the device;
- sharing: one LM run of the gpu profile (lm-stdlib, its size, bf16) alone, then four at once in
  separate processes that start their steps together (two in a dry run); the sharing factor is the median step time
  shared over alone (what the step-time and seconds-to-target columns of jobs that share the GPU
  four at a time include);
- svd: torch.linalg.svd and eigh of square fp32 matrices at the sizes of Shampoo's statistics of
  the LM at its gpu size (each dimension of its weight matrices, 512 and 1408 among them);
- tf32: one short CNN run twice with fp32_precision "ieee" (bit-identical?) and once with "tf32"
  (how far from IEEE);
- steptime: optimizer.step() alone on the 10M and 50M parameter sets of the pytest-benchmark suite
  (tests/benchmarks/test_step_benchmark.py's `transformer_params`; the suite itself times the CPU)
  on the device, torch AdamW foreach and fused and the gpu profile's optimizers, as many as the
  time left allows.

Without a CUDA device the check refuses in one line (workflows.engine.preflight) and exits 2. The
dry mode runs every step on the CPU, under the simulated accelerator (workflows.engine.device) where
a step names the device, at tiny sizes; every file it writes says DRY: it measures no GPU.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

from workflows.engine import device as devices

REPO = Path(__file__).resolve().parents[1]
DRY = "dry run on CPU: not a GPU measurement"
STEPS = ("environment", "bitsandbytes", "cuda_tests", "calibration", "sharing", "svd", "tf32", "steptime")
# seconds each step may take on the GPU; steptime gets what the others left (at least its own)
BUDGETS = {"environment": 20, "bitsandbytes": 30, "cuda_tests": 120, "calibration": 90, "sharing": 90,
           "svd": 30, "tf32": 40, "steptime": 60}
# the dry run's steps do a fixed amount of work, so their budgets are generous (a slow or loaded CI
# machine, or one without AVX-512, runs them several times slower): a dry run tests the control flow,
# not a time; steptime times as many entries as fit, so its budget stays small and bounds the test
DRY_BUDGETS = {"environment": 100, "bitsandbytes": 100, "cuda_tests": 300, "calibration": 300, "sharing": 600,
               "svd": 50, "tf32": 100, "steptime": 10}
DEFAULT_BUDGET_S = 420
GPU_CONFIG = REPO / "workflows" / "config" / "gpu.yaml"
BENCHMARK = REPO / "tests" / "benchmarks" / "test_step_benchmark.py"
SHARED_JOBS = {"gpu": 4, "dry": 2}   # workflows/profiles/gpu: four training jobs share the GPU
LM_STEPS = {"gpu": 100, "dry": 4}
CNN_STEPS = {"gpu": 50, "dry": 3}
SVD_REPEATS = 3
STEP_ROUNDS = 20
MAX_FIRST_STEP_S = 3.0    # a step slower than this is reported, not timed
ENTRY_MARGIN_S = 10       # steptime starts no entry with less than this left of its budget
SLOW_LAST = ("shampoo", "soap")   # their steps decompose matrices: timed after the others


class StepTimeout(BaseException):
    """A step over its budget: a BaseException, so that no `except Exception` on the way swallows it."""


class Step:
    """One step's record: written to DIR/<name>.json at every `save` and at the end."""

    def __init__(self, out: Path, name: str, budget: float, dry: bool):
        self.out, self.name, self.budget, self.dry = out, name, budget, dry
        self.result: dict = {}
        self.t0 = time.monotonic()

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.t0)

    def save(self, status: str = "running", error: str | None = None) -> dict:
        record = {"step": self.name, "status": status, "seconds": round(time.monotonic() - self.t0, 3),
                  "budget_s": self.budget, "measured_on": DRY if self.dry else "gpu", "error": error,
                  "result": self.result}
        (self.out / f"{self.name}.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
        return record


@contextlib.contextmanager
def alarm(seconds: float):
    """StepTimeout once `seconds` have passed (between Python operations: a kernel running on
    runs to its end; the shell script's hard limit bounds the rest)."""
    def fire(*_):
        raise StepTimeout(f"over its budget of {seconds:.0f} s")
    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def sim(dry: bool):
    """The simulated accelerator in a dry run (a device named "cuda" is then the simulated one),
    nothing on a GPU."""
    return devices.simulated() if dry else contextlib.nullcontext()


# --- the steps: each fills step.result, calling step.save() after each measurement worth keeping

def environment_step(step: Step) -> None:
    from workflows.engine.environment import environment
    with sim(step.dry):
        step.result["environment"] = environment("cuda", torch.get_num_threads())
    step.result["torch"] = torch.__version__
    step.result["torch_cuda_build"] = torch.version.cuda
    step.result["driver"] = devices.driver_version()
    step.save()
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=max(1, step.left()))
        step.result["nvidia_smi"] = out.stdout + out.stderr
    else:
        step.result["nvidia_smi"] = None


def bitsandbytes_step(step: Step) -> None:
    import bitsandbytes
    import optimizers
    step.result["bitsandbytes"] = bitsandbytes.__version__
    where = "cpu" if step.dry else "cuda"     # bitsandbytes' own kernels: no simulated device for them
    model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Linear(256, 8)).to(where)
    named = list(model.named_parameters())
    opt = optimizers.build_optimizer("adamw8bit", named)
    for _ in range(3):
        model(torch.randn(32, 256, device=where)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    step.result.update(device=where, finite=all(bool(p.isfinite().all()) for p in model.parameters()),
                       state_bytes=optimizers.state_bytes(opt),
                       state_bytes_model=optimizers.model_state_bytes("adamw8bit", named))


def cuda_tests_step(step: Step) -> None:
    xml = step.out / "cuda_tests.xml"
    env = {**os.environ, "OPTBENCH_REQUIRE_CUDA": "0" if step.dry else "1"}
    cmd = [sys.executable, "-m", "pytest", "tests/test_cuda.py", "-q", "-p", "no:cacheprovider",
           f"--junitxml={xml}"]
    try:
        out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=max(1, step.left()))
        step.result.update(returncode=out.returncode, output_tail=(out.stdout + out.stderr)[-6000:])
    except subprocess.TimeoutExpired as e:
        step.result.update(returncode=None, output_tail=str(e.stdout or "")[-6000:])
        raise StepTimeout(f"pytest ran past {step.budget:.0f} s") from None
    if xml.exists():
        suite = ET.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite[0]
        step.result["junit"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    if out.returncode != 0:
        raise RuntimeError(f"pytest exit {out.returncode}: {step.result.get('junit')}")


def gpu_profile() -> dict:
    import yaml
    return yaml.safe_load(GPU_CONFIG.read_text())


def calibration_step(step: Step) -> None:
    from workflows.engine import plan
    profile = gpu_profile()
    size = "smoke" if step.dry else profile["size"]
    step.result.update(size=size, tasks={})
    with sim(step.dry):
        for task in profile["tasks"]:   # one task at a time, each saved: a timeout keeps the others
            step.result["tasks"][task] = plan.calibrate([task], size, device="cuda",
                                                        steps=3 if step.dry else 12)[task]
            step.save()


def lm_config(dry: bool) -> dict:
    profile = gpu_profile()
    steps = LM_STEPS["dry" if dry else "gpu"]
    return {"task": "lm-stdlib", "optimizer": "adamw", "size": "smoke" if dry else profile["size"],
            "steps": steps, "eval_every": steps, "device": "cuda",
            "precision": profile["train_precision"].get("lm-stdlib", "fp32")}


def lm_child(config_json: str, out_path: str, barrier_dir: str, jobs: str, dry: str) -> None:
    """One sharing run, in its own process: builds, waits for the other jobs to have built (the
    files in `barrier_dir`), trains, and writes its step times to `out_path`."""
    from workflows.engine.harness import RunConfig, train
    jobs, dry = int(jobs), dry == "1"
    barrier = Path(barrier_dir)

    def start(_info):
        (barrier / f"{os.getpid()}.ready").touch()
        deadline = time.monotonic() + 60
        while len(list(barrier.glob("*.ready"))) < jobs and time.monotonic() < deadline:
            time.sleep(0.01)

    with sim(dry):
        record = train(RunConfig(**json.loads(config_json)), threads=1, hooks={"start": start})
    Path(out_path).write_text(json.dumps({
        "step_time": record["step_time"], "train_seconds": record["train_seconds"],
        "steps": record["steps_done"], "peak_memory_bytes": record["peak_memory_bytes"],
        "jobs_per_device": record["environment"].get("jobs_per_device")}))


def run_jobs(step: Step, jobs: int) -> list[dict]:
    """`jobs` LM runs at once, each in its own process; their results."""
    config = json.dumps(lm_config(step.dry))
    work = step.out / f"sharing_{jobs}"
    barrier = work / "barrier"
    barrier.mkdir(parents=True, exist_ok=True)
    code = "import sys; from workflows.gpu_check import lm_child; lm_child(*sys.argv[1:])"
    env = {**os.environ, devices.JOBS_PER_DEVICE_VARIABLE: str(jobs)}
    procs = [subprocess.Popen([sys.executable, "-c", code, config, str(work / f"job{i}.json"), str(barrier),
                               str(jobs), "1" if step.dry else "0"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(work / f"job{i}.log", "w"))
             for i in range(jobs)]
    try:
        for p in procs:
            p.wait(timeout=max(1, step.left()))
    except subprocess.TimeoutExpired:
        raise StepTimeout(f"{jobs} job(s) ran past the step's budget") from None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    failed = [i for i, p in enumerate(procs) if p.returncode != 0]
    if failed:
        tail = (work / f"job{failed[0]}.log").read_text()[-2000:]
        raise RuntimeError(f"sharing job(s) {failed} of {jobs} failed: {tail}")
    return [json.loads((work / f"job{i}.json").read_text()) for i in range(jobs)]


def sharing_step(step: Step) -> None:
    step.result["config"] = lm_config(step.dry)
    alone = run_jobs(step, 1)
    step.result["alone"] = alone
    step.save()
    shared = run_jobs(step, SHARED_JOBS["dry" if step.dry else "gpu"])
    step.result["shared"] = shared
    alone_step = alone[0]["step_time"]["median"]
    shared_step = statistics.median(j["step_time"]["median"] for j in shared)
    step.result["sharing_factor_step_time"] = shared_step / alone_step
    step.result["sharing_factor_train_seconds"] = (statistics.median(j["train_seconds"] for j in shared)
                                                   / alone[0]["train_seconds"])


def svd_sizes(dry: bool) -> list[int]:
    """The sides of Shampoo's statistics of the LM at its gpu size: every dimension of its weight
    matrices (512 and 1408 among them); a dry run takes a sixteenth of each."""
    from workflows.engine.flops import estimated_step_cost
    shapes = [s for _, s, _ in estimated_step_cost("lm-stdlib", "gpu")["parameters"] if len(s) == 2]
    sizes = sorted({512, 1408} | {n for s in shapes for n in s})
    return sorted({max(8, n // 16) for n in sizes}) if dry else sizes


def timed(dev, fn, repeats: int) -> list[float]:
    fn()    # warm-up: the solver's workspace, the first launch
    out = []
    for _ in range(repeats):
        t0 = dev.wall_clock()
        fn()
        out.append(dev.wall_clock() - t0)
    return out


def svd_step(step: Step) -> None:
    step.result["sizes"] = {}
    with sim(step.dry):
        dev = devices.get("cuda")
        dev.configure("ieee", True)     # the matrix products forming each statistic in IEEE fp32
        for n in svd_sizes(step.dry):
            g = torch.Generator().manual_seed(n)
            x = torch.randn(n, n, generator=g).to(dev.tensors)
            a = x @ x.T / n + 1e-3 * torch.eye(n, device=dev.tensors)   # a statistic: symmetric positive definite
            svd = timed(dev, lambda: torch.linalg.svd(a), SVD_REPEATS)
            eigh = timed(dev, lambda: torch.linalg.eigh(a), SVD_REPEATS)
            step.result["sizes"][n] = {"svd_s": statistics.median(svd), "eigh_s": statistics.median(eigh),
                                       "svd_all_s": svd, "eigh_all_s": eigh}
            step.save()


def tf32_step(step: Step) -> None:
    from workflows.engine.harness import RunConfig, train
    size = "smoke" if step.dry else gpu_profile()["size"]
    steps = CNN_STEPS["dry" if step.dry else "gpu"]
    runs = {}
    with sim(step.dry):
        for label, precision in (("ieee_1", "ieee"), ("ieee_2", "ieee"), ("tf32", "tf32")):
            record = train(RunConfig("cnn-digits", "adamw", size=size, steps=steps, device="cuda",
                                     fp32_precision=precision, deterministic=True), threads=1)
            runs[label] = record["curves"]["loss"]
            step.result[label] = {"final_loss": runs[label][-1],
                                  "in_effect": record["environment"].get("fp32_precision_in_effect")}
            step.save()
    ieee, tf32 = runs["ieee_1"], runs["tf32"]
    step.result.update(size=size, steps=steps, ieee_bit_identical=runs["ieee_1"] == runs["ieee_2"],
                       tf32_max_abs_loss_difference=max(abs(a - b) for a, b in zip(ieee, tf32)),
                       tf32_max_rel_loss_difference=max(abs(a - b) / max(abs(a), 1e-30) for a, b in zip(ieee, tf32)))


def benchmark_module():
    """tests/benchmarks/test_step_benchmark.py: its parameter sets, so the GPU times the same ones."""
    spec = importlib.util.spec_from_file_location("optbench_step_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def step_entries(dry: bool) -> list[tuple[str, str, dict]]:
    """(label, registry entry, torch AdamW options or None) in the order they are timed."""
    torch_adamw = [(f"torch-adamw-{v}", "adamw", {"foreach": v == "foreach", "fused": v == "fused"})
                   for v in ("foreach", "fused")]
    names = sorted(gpu_profile()["optimizers"], key=lambda n: n in SLOW_LAST)
    return torch_adamw + [(n, n, None) for n in (names[:2] if dry else names)]


def time_entry(dev, named, label: str, entry: str, adamw: dict | None, rounds: int) -> dict:
    import optimizers
    from workflows.engine.roofline import bytes_moved_per_step
    opt = (torch.optim.AdamW([p for _, p in named], **optimizers.get("adamw").hparams(), **adamw)
           if adamw is not None else optimizers.build_optimizer(entry, named))
    t0 = dev.wall_clock()
    opt.step()
    first = dev.wall_clock() - t0
    n = sum(p.numel() for _, p in named)
    row = {"name": label, "n_params": n, "first_step_s": first,
           "bytes_moved_per_step": bytes_moved_per_step(entry, n, named_params=named)}
    if first > MAX_FIRST_STEP_S:
        return row | {"median_s": None, "why": f"first step over {MAX_FIRST_STEP_S:g} s: not timed"}
    for _ in range(2):
        opt.step()
    timer = dev.timer()
    for _ in range(rounds):
        with timer:
            opt.step()
    times = timer.times()
    return row | {"median_s": statistics.median(times), "p10_s": sorted(times)[len(times) // 10],
                  "rounds": rounds}


def on_device(named, dev) -> list:
    out = []
    for name, p in named:
        q = p.detach().to(dev.tensors).requires_grad_(True)
        q.grad = p.grad.to(dev.tensors)
        out.append((name, q))
    return out


def steptime_step(step: Step) -> None:
    from workflows.engine.roofline import bandwidth_bytes_per_s
    bench = benchmark_module()
    sizes = {"600K": 600_000} if step.dry else {"10M": 10_000_000, "50M": 50_000_000}
    rounds = 3 if step.dry else STEP_ROUNDS
    with sim(step.dry):
        dev = devices.get("cuda")
        dev.configure("ieee", True)     # as a run of the profiles: IEEE fp32, deterministic (tf32 ran before)
        step.result["bandwidth_bytes_per_s"] = bandwidth_bytes_per_s(dev, n_bytes=2**20 if step.dry else 2**30)
        for label, total in sizes.items():
            rows = step.result.setdefault(label, [])
            base = bench.transformer_params(total)
            for name, entry, adamw in step_entries(step.dry):
                if step.left() < ENTRY_MARGIN_S:   # as many as fit: the rest named, not a failure
                    step.result.setdefault("not_timed", []).append(f"{label} {name}")
                    continue
                try:
                    row = time_entry(dev, on_device(base, dev), name, entry, adamw, rounds)
                except Exception as e:   # a library missing, an entry that cannot run here: said, not fatal
                    row = {"name": name, "error": f"{type(e).__name__}: {e}"}
                if row.get("median_s"):   # the roofline floor (bytes / measured bandwidth) over the step
                    floor = row["bytes_moved_per_step"] / step.result["bandwidth_bytes_per_s"]
                    row["pct_of_floor"] = 100 * floor / row["median_s"]
                rows.append(row)
                step.save()


RUNNERS = {"environment": environment_step, "bitsandbytes": bitsandbytes_step, "cuda_tests": cuda_tests_step,
           "calibration": calibration_step, "sharing": sharing_step, "svd": svd_step, "tf32": tf32_step,
           "steptime": steptime_step}


def run_step(out: Path, name: str, budget: float, dry: bool) -> dict:
    step = Step(out, name, budget, dry)
    step.save()
    try:
        with alarm(budget):
            RUNNERS[name](step)
        record = step.save("ok")
    except StepTimeout as e:
        record = step.save("timeout", str(e))
    except Exception as e:
        (out / f"{name}.traceback.txt").write_text(traceback.format_exc())
        record = step.save("failed", f"{type(e).__name__}: {e}"[:2000])
    line = {k: record[k] for k in ("step", "status", "seconds", "budget_s", "measured_on", "error")}
    with open(out / "summary.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")
    print(f"gpu_check: {name}: {record['status']} in {record['seconds']:.1f} s"
          + (f" ({DRY})" if dry else "") + (f": {record['error']}" if record["error"] else ""), flush=True)
    return record


def refusal() -> str | None:
    from workflows.engine import preflight
    return preflight.refusal("cuda", "gpu check",
                             "`python -m workflows.gpu_check DIR dry` runs its steps on the CPU")


def run(out_dir, budget_s: float = DEFAULT_BUDGET_S, dry: bool = False) -> int:
    """The check into `out_dir` within about `budget_s` seconds; 0 where every step passed, 1 where
    one failed or ran out of time, 2 where there is no CUDA device (and not `dry`)."""
    if not dry:
        why = refusal()
        if why:
            print(why, file=sys.stderr)
            return 2
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", devices.CUBLAS_WORKSPACE_CONFIG)  # before the first cuBLAS handle
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.jsonl").write_text("")
    budgets = dict(DRY_BUDGETS if dry else BUDGETS)
    t0 = time.monotonic()
    status = 0
    for name in STEPS:
        budget = budgets[name]
        if name == "steptime":
            budget = max(budget, budget_s - (time.monotonic() - t0))
        status |= run_step(out, name, budget, dry)["status"] != "ok"
    return status


USAGE = "usage: python -m workflows.gpu_check DIR [BUDGET_S] [dry]"


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    out, budget, dry = argv[0], DEFAULT_BUDGET_S, False
    for arg in argv[1:]:
        if arg == "dry":
            dry = True
        elif arg.replace(".", "", 1).isdigit() and float(arg) > 0:
            budget = float(arg)
        else:
            print(f"gpu check: argument {arg!r}; valid: a budget in seconds (> 0), dry. {USAGE}", file=sys.stderr)
            return 2
    return run(out, budget, dry)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
