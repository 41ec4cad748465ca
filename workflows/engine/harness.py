"""The run harness: one training run of a task by an optimizer, measured.

`train(RunConfig(...))` returns a result record (a dict, see `workflows.engine.records`). The loop is meant
to be read top to bottom:

    for step in range(steps):
        loss = task loss on batch(step), times loss_scale
        backward; divergence check (loss, gradients); optional clipping
        optimizer.step()            <- timed alone (perf_counter on CPU, events on the run's device)
        divergence check (parameters)
        optimizer hooks (Sophia's Hessian estimate every k steps, MuonClip's QK-clip)
        eval every `eval_every` steps; checkpoint every `checkpoint_every` steps
    the task's held-out test split, once at the end (`train(..., test=True)`: the final runs)

Divergence ends a run cleanly, as a result (`diverged`, `diverge_reason`), never as an
exception: a non-finite loss or one past the bound, a non-finite gradient (loss × loss_scale can
overflow where the loss does not), non-finite parameters after the step, non-finite attention
logits, or a float overflow raised inside the step or a hook (torch refusing a step size that
overflows float32, an SVD of an overflowed statistic, nothing to sample from in the Hessian
loss). Any other exception is a bug and propagates.

Mixed precision (`precision` bf16 / fp16, `loss_scaling`; see `workflows.engine.amp`): the forward
runs under autocast and the loss is scaled before backward; the gradients are unscaled, and with
a loss scaling a step whose gradients are not finite is skipped (counted, not divergence: the
scaler's answer to it is to lower c). Every `probe_every` steps a second, fp32 backward of the same
batch (no side effects on the run) gives the reference for the underflow and overflow counts.
fp32 without loss scaling takes the plain loop, unchanged. Evaluation is always in fp32, of the
fp32 master weights: the metric measures what training reached, not inference precision.

Determinism: the model and data come from named random streams of the seed
(`tasks.generator`), so the same config and seed give bit-identical curves on one machine, and
every optimizer sees the same batches. Every draw during training is a function of (seed, step)
(the batch's stream; the Hessian loss's labels from `tasks.generator(seed, "hessian:<step>")`),
and a checkpoint holds everything else that changes (model, optimizer state, RNG states, curves,
monitor rows, step times), so a resumed run's record equals the uninterrupted run's, wall-clock
fields aside. On CUDA the same holds with `deterministic` (the default: deterministic algorithms,
`workflows.engine.device.configure`); `fp32_precision` "ieee" (the default) keeps fp32 matmuls and
convolutions out of TF32. Both are no-ops on CPU.

Device: everything the harness asks of the device (the step timer, the one synchronisation a step
before the wall clock, peak memory, the device's RNG state) goes through `workflows.engine.device`.

One host synchronisation a step: a plain step (fp32 without a loss scaler) is queued whole (the
gradients, clipping, the step, the optimizer's hooks) without a look at any value, its checks
(the loss, one multi-tensor inf-norm of the gradients before clipping, one of the parameters after
the step) are left on the device and read together, in the one synchronisation the wall clock
needs (`_fast_update`). The checked loop (`_update`), which stops at the first failed check before
the next operation, is the reference: when a fast step finds a failed check, the run goes back to
its last snapshot (a checkpoint in host memory, taken at the start and after every evaluation)
and runs on checked, so it stops at the same step in the same state with the same reason, and
the record is the checked loop's (tests/test_host_syncs.py). Steps that read more: those that end
in an evaluation or a monitor row, Sophia's Hessian steps (the task's Hessian loss refuses
non-finite logits), and every step under a loss scaler, which decides on the host before the step
whether to take it (as torch's GradScaler does).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

import optimizers
import tasks
from optimizers.routing import plan, routing
from workflows.engine import amp, environment, pairs, records
from workflows.engine import device as device_module
from workflows.engine.device import StepTimer
from workflows.engine.schedule import check as check_schedule, factor as lr_factor
from workflows.engine.monitor import Monitor

DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEVICE_DEFAULTS = {"fp32_precision": "ieee", "deterministic": True}


def job_device_settings(params) -> dict:
    """A pipeline job's device settings from its Snakemake params: the keys of DEVICE_DEFAULTS the
    profile moves from their defaults (the rules pass them only then, so a profile at the defaults
    keeps its jobs' params and records), and how many jobs share the device (the GPU pool), which
    goes to the environment variable the records' environment block reads."""
    if hasattr(params, "jobs_per_device"):
        os.environ[device_module.JOBS_PER_DEVICE_VARIABLE] = str(params.jobs_per_device)
    return {k: getattr(params, k) for k in DEVICE_DEFAULTS if hasattr(params, k)}


@dataclass(frozen=True)
class RunConfig:
    task: str
    optimizer: str
    size: str = "smoke"
    seed: int = 0
    steps: int | None = None            # None: the task's steps at this size
    hparams: dict = field(default_factory=dict)   # lr included; the rest of the entry's defaults apply
    loss_scale: float = 1.0             # multiplies the loss before backward, never undone
    lr_scale: float = 1.0               # multiplies the learning rate
    dtype: str = "float32"
    device: str = "cpu"
    eval_every: int | None = None       # None: the task's
    clip_norm: float | None = None
    clip_value: float | None = None
    warmup: int = 0                     # linear warm-up steps
    schedule: str = "constant"          # after warm-up: workflows.engine.schedule.SCHEDULES
    lr_floor: float = 0.0               # the schedule's last lr, as a share of the peak
    decay: float = 0.2                  # wsd: the share of the steps that decay
    diverge_factor: float = 1e4         # loss above initial + factor*(|initial|+1) counts as diverged
    monitor_every: int = 0              # record norms and moments every k steps (workflows.engine.monitor); 0: off
    accumulate: int = 1                 # micro-batches per step: the batch is split along dim 0
    activation_checkpointing: bool = False  # recompute activations in backward (tasks that provide it)
    precision: str = "fp32"             # autocast dtype of the forward: amp.PRECISIONS; weights stay fp32
    loss_scaling: str = "none"          # amp.LOSS_SCALINGS: none, static (× static_scale), dynamic (GradScaler)
    static_scale: float = 1.0           # c of loss_scaling="static": loss × c, gradients ÷ c
    probe_every: int = 0                # underflow / overflow against an fp32 backward every k steps; 0: off
    fp32_precision: str = "ieee"        # device.FP32_PRECISIONS: ieee, or tf32 in CUDA matmuls and convolutions
    deterministic: bool = True          # deterministic algorithms on CUDA (bit-identical reruns)

    def __post_init__(self):
        task, spec = self.entries
        spec.hparams(self.hparams)
        why = pairs.compatible(task, spec)
        if why:
            raise ValueError(why)
        if self.size not in tasks.SIZES:
            raise ValueError(f"size {self.size!r}; valid: {', '.join(tasks.SIZES)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r}; valid: {', '.join(DTYPES)}")
        check_schedule(self.schedule, self.warmup, self.lr_floor, self.decay)
        for key in ("loss_scale", "lr_scale"):
            v = getattr(self, key)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{key}={v!r}: must be a finite number > 0")
        if self.activation_checkpointing and "activation_checkpointing" not in task.provides:
            with_it = [t for t in tasks.names() if "activation_checkpointing" in tasks.get(t).provides]
            raise ValueError(f"activation_checkpointing: task {self.task!r} does not provide it; "
                             f"tasks that do: {', '.join(with_it)}")
        if self.precision not in amp.PRECISIONS:
            raise ValueError(f"precision {self.precision!r}; valid: {', '.join(amp.PRECISIONS)}")
        if self.precision != "fp32":
            if "autocast" not in task.provides:
                with_it = [t for t in tasks.names() if "autocast" in tasks.get(t).provides]
                raise ValueError(f"precision {self.precision!r}: task {self.task!r} does not run under "
                                 f"autocast (valid for it: fp32); tasks that do: {', '.join(with_it)}")
            if self.dtype != "float32":
                raise ValueError(f"precision {self.precision!r} with dtype {self.dtype!r}: the master "
                                 f"weights of mixed precision are float32; valid: dtype 'float32'")
        if self.loss_scaling not in amp.LOSS_SCALINGS:
            raise ValueError(f"loss_scaling {self.loss_scaling!r}; valid: {', '.join(amp.LOSS_SCALINGS)}")
        if not (isinstance(self.static_scale, (int, float)) and math.isfinite(self.static_scale)
                and self.static_scale > 0):
            raise ValueError(f"static_scale={self.static_scale!r}: must be a finite number > 0")
        if self.static_scale != 1.0 and self.loss_scaling != "static":
            raise ValueError(f"static_scale={self.static_scale!r} with loss_scaling {self.loss_scaling!r}: "
                             f"a static scale needs loss_scaling 'static'")
        if self.probe_every < 0 or (self.probe_every and self.precision == "fp32"):
            raise ValueError(f"probe_every={self.probe_every!r} with precision {self.precision!r}: must be "
                             f">= 0, and 0 in fp32 (nothing to compare with); valid precisions for a probe: "
                             f"{', '.join(p for p in amp.PRECISIONS if p != 'fp32')}")
        if self.accumulate < 1:
            raise ValueError(f"accumulate={self.accumulate!r}: must be >= 1")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps={self.steps!r}: must be >= 1")
        device_module.check(self.fp32_precision, self.deterministic)

    @functools.cached_property
    def entries(self) -> tuple[tasks.Task, optimizers.OptimizerSpec]:
        """The registry entries the config names, looked up once: the config is checked against
        them and the run (`setup`) is built from them."""
        return tasks.get(self.task), optimizers.get(self.optimizer)

    def to_dict(self) -> dict:
        """The config as the record and its hash hold it. The device settings appear only when not
        at their defaults, so a config at the defaults keeps the hash it had before they existed."""
        d = dataclasses.asdict(self)
        for key, default in DEVICE_DEFAULTS.items():
            if d[key] == default:
                del d[key]
        d["hparams"] = dict(sorted(self.hparams.items()))
        return d


def task_defaults(task, spec, problem=None) -> dict:
    """The task's optimizer defaults (the GAN's β1 = 0.5; Sophia's bs = the samples behind one
    Hessian estimate, from the built problem) that this entry understands. A tuple shorter than the
    entry's (the GAN's betas (β1, β2) for AdEMAMix's (β1, β2, β3)) sets the leading values and
    keeps the entry's others."""
    given = task.hparam_defaults | (problem.hparam_defaults if problem else {})
    out = {}
    for key, value in given.items():
        if key not in spec.defaults:
            continue
        default = spec.defaults[key]
        if isinstance(value, tuple) and isinstance(default, tuple) and len(value) < len(default):
            value = value + default[len(value):]
        out[key] = value
    return out


def summarise_times(seconds: list[float], warmup: int) -> dict:
    xs = seconds[warmup:] or seconds
    if not xs:
        return {"median": float("nan"), "p10": float("nan"), "p90": float("nan"), "n": 0}
    qs = statistics.quantiles(xs, n=10) if len(xs) > 1 else [xs[0]] * 9
    return {"median": statistics.median(xs), "p10": qs[0], "p90": qs[-1], "n": len(xs)}


def record_header(kind: str, config: dict, device, threads: int) -> dict:
    """The keys every result record starts with (`records.REQUIRED`): schema version, kind, the
    config and its hash, the environment. One definition for the run records `train` writes and
    the sweep / stability / steptime / loop_options records of `workflows.engine.measure`."""
    return {"schema_version": records.SCHEMA_VERSION, "kind": kind, "config": config,
            "config_hash": environment.config_hash(config),
            "environment": environment.environment(device, threads)}


@dataclass
class StepInfo:
    """What a hook of `train` is given. Hooks are for tests and probes: one may measure (with no
    effect on the run's arithmetic or random streams) or raise to stop the run as a kill would.
    A hook must not change training state (parameters, buffers, optimizer state, RNG states): a
    fast step that finds a divergence sends the run back to its last snapshot, and the steps from
    there are replayed checked *without* their "step" hooks (each was called once already), so a
    change a hook made would be undone by the restore and not made again in the replay."""
    step: int                      # "start": the first step to run; "step": the step just done
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    problem: tasks.Problem
    batch: Any = None              # "step": that step's batch


HOOKS = ("start", "step")   # "start": after building (and resuming), before the first step;
# "step": after each completed step, its optimizer hooks, evaluation and checkpoint, but not again
# for a step replayed after a divergence snapshot: a hook observes, it never changes training
# state (params, optimizer state, RNG; see StepInfo)


CHECKPOINT_FORMAT = 3   # a checkpoint of another format (older code) is ignored: the run starts over
# (3: the test splits, the LM's cpu size and the GAN's metric changed what a config hash means)


def has_modes(opt) -> bool:
    """An optimizer that evaluates at another point than it takes gradients at (schedule-free:
    the average x, against y) says so by defining train() and eval(), as the model does."""
    return callable(getattr(opt, "train", None)) and callable(getattr(opt, "eval", None))


@contextlib.contextmanager
def evaluation_point(model, opt):
    """Model and optimizer in eval mode inside, back in train mode after: around every evaluation
    and the samples kept for the report. (Not around checkpoints: see `train`.)"""
    modes = has_modes(opt)
    model.eval()
    if modes:
        opt.eval()
    try:
        yield
    finally:
        if modes:
            opt.train()
        model.train()


def save_checkpoint(path, state: dict) -> None:
    """torch.save through a temporary file and a rename: a kill leaves the previous checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Run:
    """What one run resolves once, before its first step, and carries down the calls: the registry
    entries, the step count and evaluation interval, the built problem and model, the validated
    hyperparameters (the task's defaults, the config's overrides, the lr scaled), the routing plan
    the optimizer is built on (`optimizers.routing.plan`; the record's routing is read from it), the
    optimizer and its groups' peak lrs, and the config's hash (a checkpoint's key). `device` is
    where the tensors are; `accel` the device's control (`workflows.engine.device`)."""
    cfg: RunConfig
    task: tasks.Task
    spec: optimizers.OptimizerSpec
    device: torch.device
    steps: int
    eval_every: int
    problem: tasks.Problem
    model: torch.nn.Module
    named: list
    hp: dict
    parts: list
    opt: torch.optim.Optimizer
    base_lrs: list
    config_hash: str
    accel: device_module.Cpu


@dataclass
class State:
    """What changes as the run goes: the curves, the timer's and the monitor's rows, the loss
    scaler and its record, the step to start from. A checkpoint holds all of it (`_checkpoint`)."""
    timer: StepTimer
    monitor: Monitor
    scaler: amp.LossScaler | None       # None: fp32 without loss scaling, the plain loop
    mixed: dict = field(default_factory=lambda: {"skipped": [], "scales": [], "probes": []})
    losses: list = field(default_factory=list)
    evals: list = field(default_factory=list)
    wall: list = field(default_factory=list)
    initial: float | None = None
    t_train: float = 0.0
    start: int = 0
    reason: str | None = None           # why the run diverged; None: it did not


def setup(cfg: RunConfig) -> Run:
    """The run's entries, problem, model, hyperparameters and optimizer, in the order of their
    random draws (the seed first, for any module init that does not take a generator)."""
    task, spec = cfg.entries
    accel = device_module.get(cfg.device)
    accel.configure(cfg.fp32_precision, cfg.deterministic)
    device, dtype = accel.tensors, DTYPES[cfg.dtype]
    size = task.size(cfg.size)
    steps = cfg.steps or size["steps"]
    size["steps"] = steps
    torch.manual_seed(cfg.seed)
    problem = task.build(size, seed=cfg.seed, device=device, dtype=dtype)
    model = problem.model.to(device)
    if cfg.activation_checkpointing:
        problem.activation_checkpointing(model)
    named = list(model.named_parameters())
    hp = spec.hparams(task_defaults(task, spec, problem) | cfg.hparams)
    hp["lr"] = hp["lr"] * cfg.lr_scale
    parts = plan(cfg.optimizer, named, hp, decay=task.decay)
    opt = optimizers.build_optimizer(cfg.optimizer, named, hp, decay=task.decay, parts=parts)
    return Run(cfg, task, spec, device, steps, cfg.eval_every or task.eval_every, problem, model, named, hp,
               parts, opt, [g["lr"] for g in opt.param_groups], environment.config_hash(cfg.to_dict()), accel)


def train(cfg: RunConfig, threads: int | None = None, progress: bool = False,
          checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 0,
          hooks: dict[str, Callable[[StepInfo], None]] | None = None, test: bool = False) -> dict:
    """One run. With `checkpoint` and `checkpoint_every`, the model, optimizer state, RNG states,
    curves, monitor rows, step times and step are saved every `checkpoint_every` steps, and a run
    that finds a checkpoint of the same config resumes from it on an identical trajectory (every
    random draw is a function of the seed and the step). `hooks` maps events of `HOOKS` to
    functions of a `StepInfo`. `test`: evaluate the task's held-out test split at the end
    (`_test`); the final and self-tuning runs do (`measurements.final.run`), the tuning runs never
    (the default: a selection cannot see the test split). It is not part of the config
    (it changes no trained number, only what the record holds), so it leaves the config's hash and
    a checkpoint's key as they are."""
    hooks = dict(hooks or {})
    unknown = sorted(set(hooks) - set(HOOKS))
    if unknown:
        raise ValueError(f"unknown hook {', '.join(unknown)}; valid: {', '.join(HOOKS)}")
    if threads:
        torch.set_num_threads(threads)
    run = setup(cfg)
    model, opt, problem, steps = run.model, run.opt, run.problem, run.steps
    state = State(run.accel.timer(), Monitor(cfg.monitor_every), None)
    run.accel.reset_peak_memory()
    if not (cfg.precision == "fp32" and cfg.loss_scaling == "none"):
        state.scaler = amp.LossScaler(cfg.loss_scaling, cfg.static_scale, run.device)
    _resume(run, state, checkpoint)
    if state.start == 0:
        _evaluate(run, state, 0)
    if "start" in hooks:
        hooks["start"](StepInfo(state.start, model, opt, problem))
    bar = _progress(steps, f"{cfg.task}/{cfg.optimizer}/seed{cfg.seed}") if progress else None
    if bar and state.start:
        bar.update(state.start)
    fast = state.scaler is None     # a loss scaler decides on the host, before the step, to skip it
    snapshot, replay_to = (_snapshot(run, state, state.start) if fast else None), -1
    step = state.start
    while step < steps:
        t0 = time.perf_counter()
        for g, base in zip(opt.param_groups, run.base_lrs):
            g["lr"] = base * lr_factor(step, steps, cfg.warmup, cfg.schedule, cfg.lr_floor, cfg.decay)
        batch = problem.batch(step)
        if fast:
            if not _fast_update(run, state, batch, step):
                fast, replay_to, step = False, step, _restore(run, state, snapshot)
                continue
            now = time.perf_counter()   # after the step's one synchronisation, in `_fast_update`
        else:
            state.reason = _update(run, state, batch, step)
            if state.reason:
                break
            if state.scaler:
                state.scaler.update()
            now = run.accel.wall_clock()
        state.t_train += now - t0
        state.wall.append(state.t_train)
        replayed, step = step < replay_to, step + 1
        if step % run.eval_every == 0 or step == steps:
            _evaluate(run, state, step)
            if fast and step < steps:
                snapshot = _snapshot(run, state, step)
        if replayed:    # done once already: no second checkpoint, progress or hook
            continue
        if bar:
            bar.update(1)
        if checkpoint and checkpoint_every and step % checkpoint_every == 0 and step < steps:
            save_checkpoint(checkpoint, _checkpoint(run, state, step))
        if "step" in hooks:
            hooks["step"](StepInfo(step - 1, model, opt, problem, batch))
    if bar:
        bar.close()
    if state.reason and state.evals[-1]["step"] != len(state.losses):
        _evaluate(run, state, len(state.losses))
    return _record(run, state, _test(run, state) if test else None)


def _evaluate(run: Run, state: State, step: int) -> None:
    with evaluation_point(run.model, run.opt):
        values = run.problem.evaluate(run.model)
    state.evals.append({"step": step, **{k: float(v) for k, v in values.items()}})


def _test(run: Run, state: State) -> dict | None:
    """The task's test split (`Problem.test`) on the trained model, at the evaluation point, once
    after the last evaluation: {metric, n, se, values}; None where the task has none (its metric is
    its objective). A diverged run's is NaN, as its final metric is, and evaluates nothing. The
    task's test draws from streams of its own, never the global RNG, and comes after the last step,
    so it changes no number of the run."""
    if run.problem.test is None:
        return None
    if state.reason is not None:
        return {"metric": math.nan, "n": None, "se": None, "values": None}
    with evaluation_point(run.model, run.opt):
        values = run.problem.test(run.model)
    missing = [k for k in (run.task.metric.name, "n_test", "se") if k not in values]
    if missing:
        raise ValueError(f"task {run.task.name!r}: its test returned no {', '.join(missing)}; "
                         f"valid: a dict with {run.task.metric.name!r}, 'n_test' and 'se' (tasks.Problem.test)")
    values = {k: float(v) if k != "n_test" else int(v) for k, v in values.items()}
    return {"metric": values[run.task.metric.name], "n": values["n_test"], "se": values["se"], "values": values}


def _resume(run: Run, state: State, checkpoint) -> None:
    """Put a checkpoint of this config (and this format) back into the run and its state; any
    other file, or none, leaves the run to start at step 0."""
    if not (checkpoint and Path(checkpoint).exists()):
        return
    saved = torch.load(checkpoint, weights_only=False)
    if saved.get("format") != CHECKPOINT_FORMAT or saved["config_hash"] != run.config_hash:
        return
    _put_back(run, state, saved)


def _snapshot(run: Run, state: State, step: int) -> bytes:
    """The checkpoint of `step` (`_checkpoint`), in host memory: what a fast step that found a
    divergence goes back to (`_restore`)."""
    buffer = io.BytesIO()
    torch.save(_checkpoint(run, state, step), buffer)
    return buffer.getvalue()


def _restore(run: Run, state: State, snapshot: bytes) -> int:
    """Put a `_snapshot` back, as a resume would; returns its step."""
    _put_back(run, state, torch.load(io.BytesIO(snapshot), weights_only=False))
    return state.start


def _put_back(run: Run, state: State, saved: dict) -> None:
    run.model.load_state_dict(saved["model"])
    run.opt.load_state_dict(saved["optimizer"])
    run.accel.set_rng_state((saved["rng"], saved["cuda_rng"]))
    state.start, state.losses, state.evals, state.wall, state.initial, state.t_train = (saved[k] for k in (
        "step", "losses", "evals", "wall", "initial", "t_train"))
    state.timer.seconds, state.timer.pairs = list(saved["step_seconds"]), []
    state.monitor.rows = list(saved["monitor"])
    if state.scaler:
        state.scaler.load_state_dict(saved["scaler"])
        state.mixed = {k: list(v) for k, v in saved["mixed"].items()}


def _checkpoint(run: Run, state: State, step: int) -> dict:
    """What `_resume` puts back, taken in train mode: the exact training state (a schedule-free
    optimizer's y, z and mode); saving at the evaluation point would round y on the way back, and
    the resumed run would not be the uninterrupted one."""
    rng, device_rng = run.accel.rng_state()
    return {
        "format": CHECKPOINT_FORMAT, "config_hash": run.config_hash, "step": step,
        "model": run.model.state_dict(), "optimizer": run.opt.state_dict(), "rng": rng, "cuda_rng": device_rng,
        "losses": state.losses, "evals": state.evals, "wall": state.wall, "initial": state.initial,
        "t_train": state.t_train, "step_seconds": state.timer.times(), "monitor": state.monitor.rows,
        "scaler": state.scaler.state_dict() if state.scaler else None, "mixed": state.mixed}


def _update(run: Run, state: State, batch, step: int) -> str | None:
    """One step's gradients, the divergence checks on the loss and the gradients, clipping, and the
    optimizer's step and hooks (`_step`). Returns why the run diverged, else None. A non-finite
    gradient under a loss scaling is the scaler's business: the step is skipped, not divergence."""
    cfg = run.cfg
    (value,), bad = _read([_gradients(run, state, batch, step)], [(n, p.grad) for n, p in run.named])
    state.losses.append(value)
    if state.initial is None:
        state.initial = value
    initial = state.initial
    if not math.isfinite(value):
        return f"non-finite loss {value} at step {step}"
    if value > initial + cfg.diverge_factor * (abs(initial) + 1):
        return f"loss {value:.3g} exceeded bound at step {step} (initial {initial:.3g})"
    if bad:
        if state.scaler and cfg.loss_scaling != "none":
            state.mixed["skipped"].append(step)
            return None
        scaled = f" of the loss × {cfg.loss_scale:g}" if cfg.loss_scale != 1 else ""
        return f"non-finite gradient{scaled} ({_listed(bad)}) at step {step}"
    if cfg.clip_value is not None:
        torch.nn.utils.clip_grad_value_(run.model.parameters(), cfg.clip_value)
    if cfg.clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.clip_norm)
    return _step(run, state, batch, step)


def _fast_update(run: Run, state: State, batch, step: int) -> bool:
    """The plain step (fp32, no loss scaler) with one host synchronisation: the gradients, clipping,
    the optimizer's step and hooks, queued without a look at any value; the checks of `_update`
    (the loss finite and within the bound, the gradients finite before clipping, the parameters
    finite after the step, the attention logits finite) are left on the device as one vector and
    read together at the step's end, the read that also stands for the wall clock's
    synchronisation. Returns whether every check passed. If one did not, or the step raised, the
    step was taken speculatively on values the checked loop would have stopped at: the caller goes
    back to the last snapshot and runs on checked (`_update`), which stops at this same step with
    the checked loop's reason and state, so the record is the one `_update` alone gives."""
    cfg, opt, named, monitor = run.cfg, run.opt, run.named, state.monitor
    try:
        opt.zero_grad(set_to_none=True)
        loss = accumulate_gradients(run.model, run.problem.loss, batch, cfg.accumulate, cfg.loss_scale,
                                    stop_non_finite=False)
        checks = [loss.reshape(1).to(torch.float64), _inf_norms([p.grad for _, p in named])]
        if cfg.clip_value is not None:
            torch.nn.utils.clip_grad_value_(run.model.parameters(), cfg.clip_value)
        if cfg.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.clip_norm)
        monitor.before_step(step, opt)
        with state.timer:
            opt.step()
        checks.append(_inf_norms([p for _, p in named]))
        monitor.after_step(step, opt)
        if "hessian" in run.spec.needs and step % run.spec.hessian_every == 0:
            _update_hessian(opt, run.model, run.problem, batch,
                            tasks.device_generator(cfg.seed, f"hessian:{step}", run.device))
        if "attention_logits" in run.spec.needs:
            with torch.no_grad():
                logits = run.problem.attention_logits(run.model, batch)
                checks.append(_inf_norms([logits]))
                opt.qk_clip(logits, run.problem.qk_weights)
    except Exception:   # the checked replay raises it again if it is not a divergence
        return False
    value, *norms = run.accel.read(torch.cat(checks))
    state.losses.append(value)
    if state.initial is None:
        state.initial = value
    bound = state.initial + cfg.diverge_factor * (abs(state.initial) + 1)
    return math.isfinite(value) and not value > bound and all(math.isfinite(x) for x in norms)


def _inf_norms(tensors) -> torch.Tensor:
    """The largest |entry| of each checkable tensor (`_checkable`), float64, one multi-tensor kernel
    per dtype: a tensor is finite iff its entry here is (NaN propagates through the max)."""
    kinds: dict = {}
    for _, _, t in _checkable([(None, t) for t in tensors]):
        kinds.setdefault(t.dtype, []).append(t)
    norms = [torch.stack(torch._foreach_norm(ts, float("inf"))).to(torch.float64) for ts in kinds.values()]
    return torch.cat(norms) if norms else torch.zeros(0, dtype=torch.float64)


def _gradients(run: Run, state: State, batch, step: int) -> torch.Tensor:
    """The batch's gradients in .grad and its loss (detached, read with the gradients' check in
    `_update`). Plain: one fp32 backward. Mixed precision or
    loss scaling: under autocast and the scaler, unscaled after, with every `probe_every` steps the
    fp32 reference gradient taken first and the low-precision one compared with it."""
    cfg, model, loss_fn, scaler = run.cfg, run.model, run.problem.loss, state.scaler
    run.opt.zero_grad(set_to_none=True)
    if scaler is None:
        return accumulate_gradients(model, loss_fn, batch, cfg.accumulate, cfg.loss_scale)
    reference = None
    if cfg.probe_every and step % cfg.probe_every == 0:
        reference = _reference_gradients(model, run.named, loss_fn, batch, cfg.accumulate, cfg.loss_scale,
                                         run.accel)
    state.mixed["scales"].append(scaler.factor())
    loss = accumulate_gradients(model, loss_fn, batch, cfg.accumulate, cfg.loss_scale,
                                forward=lambda: amp.autocast(cfg.precision, run.device), scaler=scaler)
    if reference is not None:   # the gradient as the low-precision backward left it, still × c
        state.mixed["probes"].append({"step": step, **amp.gradient_shares([p.grad for _, p in run.named],
                                                                            reference)})
    scaler.unscale(run.opt)
    return loss


def _record(run: Run, state: State, test: dict | None = None) -> dict:
    """The run's result record (`workflows.engine.records`). `final_metric` is the metric at the
    last evaluation (the validation split's: what tuning selects on); `metric_split` says where the
    task's reported number is measured: "test" (its held-out test split, in `test_metric`, with
    `test_n` examples and standard error `test_se`; all None in a run that did not evaluate it) or
    "objective" (no test split: the metric is the objective, and `final_metric` is reported)."""
    cfg, task, spec, problem, hp = run.cfg, run.task, run.spec, run.problem, run.hp
    losses, wall, evals, metric = state.losses, state.wall, state.evals, task.metric
    diverged = state.reason is not None
    final = evals[-1][metric.name] if not diverged else float("nan")
    to_target = next((e["step"] for e in evals if math.isfinite(e[metric.name]) and metric.reached(e[metric.name])),
                     None)
    seconds_to_target = wall[to_target - 1] if to_target else None
    n_params = sum(p.numel() for _, p in run.named)
    measured = optimizers.state_bytes(run.opt)
    modelled = optimizers.model_state_bytes(cfg.optimizer, run.named, hp)
    mixed = state.mixed
    return {
        **record_header("run", cfg.to_dict(), run.accel, torch.get_num_threads()),
        "task": {"name": task.name, "family": task.family, "metric": metric.name,
                 "direction": metric.direction, "target": metric.target, "data_hash": problem.data_hash,
                 "n_params": n_params, "optimum": problem.optimum, "extras": problem.extras},
        "optimizer": {"name": spec.name, "family": spec.family, "implementation": spec.implementation,
                      "version": spec.version, "hparams": {k: v for k, v in hp.items()},
                      "routing": routing(cfg.optimizer, run.named, hp, decay=task.decay, parts=run.parts)},
        "curves": {"loss": losses, "time": wall, "eval": evals},
        "monitor": state.monitor.rows,
        "final_metric": final,
        "metric_split": "objective" if problem.test is None else "test",
        "test_metric": test and test["metric"], "test_n": test and test["n"], "test_se": test and test["se"],
        "test_values": test and test["values"],
        "final_loss": losses[-1] if losses else float("nan"),
        "steps_done": len(wall),
        "steps_to_target": to_target,
        "seconds_to_target": seconds_to_target,
        "step_time": summarise_times(state.timer.times(), warmup=min(5, run.steps // 10)),
        "state_bytes": {"measured": measured, "model": modelled, "per_param": measured / max(n_params, 1)},
        "peak_memory_bytes": run.accel.peak_memory(),
        "samples": _samples(problem, run.model, run.opt) if problem.samples and not diverged else None,
        "diverged": diverged,
        "diverge_reason": state.reason,
        "train_seconds": state.t_train,
        "precision": None if state.scaler is None else {
            "precision": cfg.precision, "loss_scaling": cfg.loss_scaling, "static_scale": cfg.static_scale,
            "skipped_steps": len(mixed["skipped"]), "skipped": mixed["skipped"],
            "scale": mixed["scales"] if cfg.loss_scaling == "dynamic" else None,
            "probe_every": cfg.probe_every, "probes": mixed["probes"]},
    }


def _step(run: Run, state: State, batch, step: int) -> str | None:
    """optimizer.step() (timed) and the optimizer's hooks. Returns why the run diverged if a value
    overflowed, else None."""
    opt, spec, named, monitor = run.opt, run.spec, run.named, state.monitor
    where = "optimizer.step()"
    try:
        monitor.before_step(step, opt)
        with state.timer:
            opt.step()
        bad = _non_finite(named)
        if bad:
            return f"non-finite parameters ({_listed(bad)}) after optimizer.step() at step {step}"
        monitor.after_step(step, opt)
        if "hessian" in spec.needs and step % spec.hessian_every == 0:
            where = "the Hessian estimate"
            _update_hessian(opt, run.model, run.problem, batch,
                            tasks.device_generator(run.cfg.seed, f"hessian:{step}", run.device))
        if "attention_logits" in spec.needs:
            where = "QK-clip"
            with torch.no_grad():
                logits = run.problem.attention_logits(run.model, batch)
                if not bool(torch.isfinite(logits).all()):
                    return f"non-finite attention logits at step {step}"
                opt.qk_clip(logits, run.problem.qk_weights)
    except Exception as exc:
        why = _overflow(exc, named, opt)
        if why is None:
            raise
        return f"overflow in {where} at step {step}: {why}"
    return None


def _non_finite(named) -> list[str]:
    """The names of the (name, tensor) pairs with a non-finite entry (`_read`)."""
    return _read([], named)[1]


def _read(scalars: list[torch.Tensor], named) -> tuple[list[float], list[str]]:
    """The values of the 0-d tensors `scalars` and the names of the (name, tensor) pairs with a
    non-finite entry, in one host read per device: the check of a step costs one synchronisation
    and a few kernels, not two per tensor. A tensor is finite iff its largest |entry| (the inf-norm,
    one multi-tensor kernel for all: `torch._foreach_norm`) is; NaN propagates through the max.
    None, empty and integer tensors are finite; a sparse tensor is its stored values."""
    named = _checkable(named)
    groups: dict = {}   # device -> [(labels, 1-d float64 tensor)]: ("value", i) a scalar, (i, name) a tensor
    for i, s in enumerate(scalars):
        groups.setdefault(s.device, []).append(([("value", i)], s.detach().reshape(1).to(torch.float64)))
    by_kind: dict = {}
    for i, n, t in named:
        by_kind.setdefault((t.device, t.dtype), []).append((i, n, t))
    for (dev, _), kind in by_kind.items():
        norms = torch._foreach_norm([t for _, _, t in kind], float("inf"))
        groups.setdefault(dev, []).append(([(i, n) for i, n, _ in kind], torch.stack(norms).to(torch.float64)))
    values, bad = [None] * len(scalars), []
    for parts in groups.values():   # the devices in the order they come, each's names in the given order
        read = torch.cat([v for _, v in parts]).tolist()
        labels = [label for labels, _ in parts for label in labels]
        values_here = [(label[1], x) for label, x in zip(labels, read) if label[0] == "value"]
        for i, x in values_here:
            values[i] = x
        bad += [n for (i, n), x in sorted((lab, x) for lab, x in zip(labels, read) if lab[0] != "value")
                if not math.isfinite(x)]
    return values, bad


def _checkable(named) -> list[tuple[int, Any, torch.Tensor]]:
    """(index, name, tensor) of the pairs that can hold a non-finite entry: None, empty and integer
    tensors cannot; a sparse tensor is its stored values."""
    named = [(n, t._values() if t.is_sparse else t) for n, t in named if isinstance(t, torch.Tensor)]
    return [(i, n, t) for i, (n, t) in enumerate(named) if t.numel() and (t.is_floating_point() or t.is_complex())]


def _listed(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


OVERFLOW_ERRORS = (OverflowError, FloatingPointError)


def _overflow(exc: Exception, named, opt) -> str | None:
    """Why `exc`, raised inside a step or an optimizer hook, is a float overflow (and so the run's
    divergence), or None. An overflow is an OverflowError or FloatingPointError (the tasks' Hessian
    loss raises one on non-finite logits), torch's "cannot be converted to type float without
    overflow" (Adam's step size lr / (1 - β1^t) at lr 1e38), or any exception while a parameter,
    gradient or optimizer state holds a non-finite value (an SVD of an overflowed statistic)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    what = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    if isinstance(exc, OVERFLOW_ERRORS) or (isinstance(exc, RuntimeError) and "without overflow" in first):
        return what
    names = {id(p): n for n, p in named}
    state = [(f"{names.get(id(p), '?')} state {key}", t) for p, st in opt.state.items()
             for key, t in (st.items() if isinstance(st, dict) else ())]
    bad = _non_finite(list(named) + [(f"{n}.grad", p.grad) for n, p in named] + state)
    return f"{what} (non-finite {_listed(bad)})" if bad else None


def _samples(problem, model, opt) -> list:
    with evaluation_point(model, opt):
        return problem.samples(model).tolist()


def split_batch(batch, k: int) -> list:
    """k micro-batches of a batch: tensors (and tuples/dicts of tensors) split along dim 0."""
    if k == 1:
        return [batch]
    if isinstance(batch, torch.Tensor):
        if batch.dim() == 0 or batch.shape[0] % k:
            raise ValueError(f"accumulate={k}: the batch's first dimension "
                             f"{tuple(batch.shape)[:1]} does not split into {k} equal micro-batches")
        return list(batch.chunk(k))
    if isinstance(batch, (tuple, list)):
        return [type(batch)(parts) for parts in zip(*(split_batch(b, k) for b in batch))]
    if isinstance(batch, dict):
        split = {key: split_batch(v, k) for key, v in batch.items()}
        return [{key: split[key][i] for key in batch} for i in range(k)]
    raise ValueError(f"accumulate={k}: cannot split a batch of type {type(batch).__name__}")


def accumulate_gradients(model, loss_fn, batch, k: int, loss_scale: float,
                         forward: Callable[[], Any] = contextlib.nullcontext, scaler=None,
                         stop_non_finite: bool = True) -> torch.Tensor:
    """Backward over k equal micro-batches, each loss weighted 1/k: for a mean loss this is the
    gradient of the whole batch. Returns the (unscaled) loss of the whole batch, detached. A
    non-finite loss returns before any backward, so the caller can stop the run cleanly.
    `forward` is the context of each forward (autocast); `scaler` (an `amp.LossScaler`) multiplies
    the loss by its c on top of `loss_scale` (the gradients are unscaled by the caller).
    `stop_non_finite` False: no look at the loss (no host read), every micro-batch's backward runs."""
    total = 0.0
    for micro in split_batch(batch, k):
        with forward():
            loss = loss_fn(model, micro) / k
        if stop_non_finite and not torch.isfinite(loss.detach()):
            return loss.detach() * k
        scaled = loss * loss_scale
        (scaler.scale(scaled) if scaler else scaled).backward()
        total = total + loss.detach()
    return total


def _reference_gradients(model, named, loss_fn, batch, k: int, loss_scale: float, accel) -> list:
    """The fp32 gradient of the batch (no autocast, no scaler), for the underflow / overflow probe.
    It leaves the run as it was: the RNG states and the model's buffers (BatchNorm's running
    statistics) are put back, and .grad is cleared for the run's own backward."""
    rng = accel.rng_state()
    buffers = [b.detach().clone() for b in model.buffers()]
    accumulate_gradients(model, loss_fn, batch, k, loss_scale)
    reference = [None if p.grad is None else p.grad.detach().clone() for _, p in named]
    for p_, b in zip(model.buffers(), buffers):
        p_.data.copy_(b)
    accel.set_rng_state(rng)
    for _, p in named:
        p.grad = None
    return reference


def _update_hessian(opt, model, problem, batch, generator):
    """Sophia's Gauss-Newton-Bartlett estimate: gradients of the loss on labels sampled (with
    `generator`, the step's own stream) from the model, handed to the optimizer's
    update_hessian(), which reads them from .grad."""
    opt.zero_grad(set_to_none=True)
    problem.hessian_loss(model, batch, generator).backward()
    opt.update_hessian()
    opt.zero_grad(set_to_none=True)


def _progress(total, desc):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, mininterval=2.0, leave=False)
