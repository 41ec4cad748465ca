"""The `optbench` command: list the registries, run one training run, size optimizer memory.

    optbench list optimizers|tasks
    optbench memory --params 70e9 [--optimizer NAME] [--precision fp32|mixed]
    optbench new-optimizer NAME
    optbench plan [--profile P | --configfile F] [--config K=V ...] [--cores N] [--calibrate | --h100] [--flops]
    optbench run --task T --optimizer O [--seed S] [--steps N] [--lr X] [--hparam K=V ...]
                 [--loss-scale C] [--lr-scale C] [--size smoke|cpu|gpu] [--device D] [--out FILE]
                 [--precision fp32|bf16|fp16] [--loss-scaling none|static|dynamic] [--static-scale C]
                 [--schedule constant|cosine|wsd] [--warmup W] [--lr-floor F]

Bad input is refused before any training starts, with one line on stderr that names the value and
what is valid, and exit status 2. Only argparse and the standard library are imported here: torch,
pandas and the registries are imported inside the command that needs them, so `optbench --help`
starts fast.
"""
from __future__ import annotations

import argparse
import ast
import decimal
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

MAX_STEPS = 10**7          # more steps than any task's gpu size by far: a larger count is a typo
MAX_SEED = 2**32 - 1
MAX_THREADS = 1024
DEVICE = re.compile(r"cpu|cuda(:(0|[1-9][0-9]*))?")


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line, `optbench run: error: ...`, without the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_hparam(text: str) -> tuple[str, object]:
    """K=V with V a Python literal (0.9, (0.9, 0.99), True); anything else stays a string (and the
    registry refuses it where the hyperparameter is not a string)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE; valid: e.g. momentum=0.9 or betas='(0.9, 0.95)'")
    key, value = text.split("=", 1)
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return key, value


def whole(lo: int, hi: int):
    """An argparse type: a whole number in [lo, hi], written as 1000, 1_000 or 1e3."""
    valid = f"a whole number from {lo} to {hi}"

    def parse(text: str) -> int:
        try:
            value = decimal.Decimal(text.strip().replace("_", ""))
        except decimal.InvalidOperation:
            value = None
        if value is None or not value.is_finite() or value != value.to_integral_value():
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; valid: {valid}")
        if not lo <= value <= hi:   # compared as a Decimal: 1e999999 is never built as an int
            raise argparse.ArgumentTypeError(f"{text} is too {'small' if value < lo else 'large'}; valid: {valid}")
        return int(value)
    return parse


def real(positive: bool):
    """An argparse type: a number; finite and > 0 with `positive` (the lr's range is the registry's to check)."""
    valid = "a finite number > 0" if positive else "a number, e.g. 1e-3"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; valid: {valid}") from None
        if positive and not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{text!r} is out of range; valid: {valid}")
        return value
    return parse


def share(text: str) -> float:
    """An argparse type: a share in [0, 1), as a profile's `schedule.warmup` (of the run's steps)."""
    valid = "a share of the run's steps in [0, 1), e.g. 0.05"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; valid: {valid}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range; valid: {valid}")
    return value


def negative_values(argv: list[str]) -> list[str]:
    """`--lr -1e-3` as `--lr=-1e-3`: argparse reads a token such as -1e-3 as an option, not as the
    value (it takes only -1 and -.5 for negative numbers), and would say "expected one argument"."""
    out = []
    for token in argv:
        if token.startswith("-") and out and out[-1].startswith("--") and "=" not in out[-1]:
            try:
                float(token)
            except ValueError:
                pass
            else:
                out[-1] += f"={token}"
                continue
        out.append(token)
    return out


def device_name(text: str) -> str:
    if not DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; valid: cpu, cuda or cuda:N (N = 0, 1, ...)")
    return text


def out_path(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is an empty path; valid: a file path such as run.json")
    return text


def check_device(device: str, named: str | None = None, instead: str = "--device cpu") -> None:
    """A CUDA device must exist here (the syntax was checked by the parser): workflows.engine.preflight."""
    from workflows.engine import preflight
    why = preflight.refusal(device, named or f"--device {device}", instead)
    if why:
        raise ValueError(why)


def check_writable(path: str) -> None:
    """The record can be written at `path`: not a directory, and its directory exists and takes a
    file, or can be created (the nearest existing ancestor is a directory that takes a file)."""
    valid = "a file path in a directory you can write"
    target = Path(os.path.abspath(path))
    if target.is_dir():
        raise ValueError(f"--out {path!r} is a directory; valid: {valid}, e.g. {os.path.join(path, 'run.json')}")
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"--out {path!r}: {ancestor} is a file, not a directory; valid: {valid}")
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as e:
        raise ValueError(f"--out {path!r}: cannot write in {ancestor} ({e.strerror or e}); valid: {valid}") from None


def list_optimizers() -> str:
    import pandas as pd
    import torch

    import optimizers
    rows = []
    for name in optimizers.names():
        s = optimizers.get(name)
        fp32 = s.state_bytes((1024, 1024), torch.float32) / (1024 * 1024)
        rows.append({"name": name, "family": s.family, "implementation": s.implementation,
                     "version": s.version if s.implementation != "ours" else "ours",
                     "state B/param (fp32 1024x1024)": f"{fp32:.3g}",
                     "takes": f"policy, rest -> {s.fallback}" if s.fallback else "all",
                     "needs": ", ".join(sorted(s.needs)) or "-", "lr range": f"{s.lr_range[0]:g}..{s.lr_range[1]:g}"})
    return pd.DataFrame(rows).to_markdown(index=False)


def list_tasks() -> str:
    import pandas as pd

    import tasks
    rows = []
    for name in tasks.names():
        t = tasks.get(name)
        rows.append({"name": name, "family": t.family,
                     "metric": f"{t.metric.name} ({t.metric.direction}, target {t.metric.target:g})",
                     **{f"{size} steps": t.sizes[size]["steps"] for size in tasks.SIZES},
                     "provides": ", ".join(sorted(t.provides)) or "-", "description": t.description})
    return pd.DataFrame(rows).to_markdown(index=False)


def cmd_list(args) -> int:
    print(list_optimizers() if args.what == "optimizers" else list_tasks())
    import optimizers
    import tasks
    for path, error in (optimizers if args.what == "optimizers" else tasks).broken():
        print(f"\n{path} failed to load: {error}")
    return 0


def _finite_or_text(x):
    """A summary value as strict JSON: non-finite floats as "nan", "inf", "-inf" (as the record has them)."""
    return str(x) if isinstance(x, float) and not math.isfinite(x) else x


def summary(record: dict) -> dict:
    """What `optbench run` prints: the record's outcome, diverged runs included."""
    out = {k: record.get(k) for k in ("final_metric", "final_loss", "steps_to_target", "diverged", "diverge_reason")}
    out["metric"] = (record.get("task") or {}).get("metric")
    out["step_time_median_s"] = (record.get("step_time") or {}).get("median")
    out["state_bytes"] = (record.get("state_bytes") or {}).get("measured")
    return {k: _finite_or_text(v) for k, v in out.items()}


def cmd_run(args) -> int:
    from workflows.engine import records
    from workflows.engine.harness import RunConfig, train
    hparams = dict(args.hparam or [])
    if args.lr is not None:
        if "lr" in hparams:
            raise ValueError(f"the lr is given twice, --lr {args.lr:g} and --hparam lr={hparams['lr']!r}; "
                             f"valid: one of them")
        hparams["lr"] = args.lr
    # Everything is checked before training: the names, the hyperparameters (the registry), the
    # config (RunConfig), the options against each other, the device and where the record goes.
    check_loss_scaling(args)
    static_scale = 1.0 if args.static_scale is None else args.static_scale
    cfg = RunConfig(task=args.task, optimizer=args.optimizer, size=args.size, seed=args.seed, steps=args.steps,
                    hparams=hparams, loss_scale=args.loss_scale, lr_scale=args.lr_scale, device=args.device,
                    dtype=args.dtype, precision=args.precision, loss_scaling=args.loss_scaling,
                    static_scale=static_scale, fp32_precision=args.fp32_precision,
                    deterministic=args.deterministic, **run_schedule(args))
    check_schedule(args, cfg)
    for line in run_warnings(cfg, "lr" in hparams):
        print(f"optbench run: warning: {line}", file=sys.stderr)
    check_device(args.device)
    if args.out is not None:
        check_writable(args.out)
    record = train(cfg, threads=args.threads, progress=True)
    if args.out is not None:
        records.write(record, args.out)
    print(json.dumps(summary(record), indent=1, allow_nan=False))
    return 0


def check_loss_scaling(args) -> None:
    """Loss scaling and its scale go together, and only with a low-precision backward (each value
    alone RunConfig checks)."""
    if args.loss_scaling == "static" and args.static_scale is None:
        raise ValueError("--loss-scaling static needs --static-scale C (the loss × C, the gradients ÷ C); "
                         "valid: e.g. --static-scale 1024, or --loss-scaling dynamic (GradScaler finds C)")
    if args.static_scale is not None and args.loss_scaling != "static":
        raise ValueError(f"--static-scale {args.static_scale:g} with --loss-scaling {args.loss_scaling}: "
                         f"the scale acts only in static loss scaling; valid: --loss-scaling static")
    if args.loss_scaling in ("static", "dynamic") and args.precision == "fp32":
        raise ValueError(f"--loss-scaling {args.loss_scaling} with --precision fp32: loss scaling moves an "
                         f"fp16 backward into fp16's range, an fp32 backward needs none; valid: --precision "
                         f"fp16 (or bf16) with it, or --loss-scaling none")


def check_schedule(args, cfg) -> None:
    """An lr floor needs a schedule that decays to it: at a constant lr (given, the task's own, or
    the entry's, which brings its own schedule) it would be ignored."""
    if args.lr_floor is not None and cfg.schedule == "constant":
        whose = ("--schedule constant" if args.schedule else
                 f"entry {cfg.optimizer!r} brings its own schedule and runs at a constant lr"
                 if not cfg.entries[1].takes_schedule else f"task {cfg.task!r} runs at a constant lr")
        raise ValueError(f"--lr-floor {args.lr_floor:g} with schedule constant ({whose}): a constant lr has "
                         f"no floor; valid: --schedule cosine or wsd with it, or no --lr-floor")


def run_warnings(cfg, lr_given: bool) -> list[str]:
    """What `optbench run` does but the pipeline never would: a run outside the entry's design,
    allowed (an experiment may want it), said on stderr."""
    spec = cfg.entries[1]
    lr = cfg.hparams.get("lr")
    lines = []
    if lr_given and spec.self_tuning:
        lines.append(f"lr={lr:g} for {spec.name!r}, a self-tuning entry: it multiplies the step size the entry "
                     f"adapts; the pipeline runs it at lr={spec.defaults['lr']:g}")
    elif lr_given and not spec.lr_range[0] <= lr <= spec.lr_range[1]:
        lines.append(f"lr={lr:g} is outside the tuning range of {spec.name!r}, "
                     f"{spec.lr_range[0]:g}..{spec.lr_range[1]:g}")
    if cfg.schedule != "constant" and not spec.takes_schedule:
        lines.append(f"schedule {cfg.schedule} for {spec.name!r}, which brings its own schedule; the pipeline "
                     f"runs it at a constant lr")
    return lines


def run_schedule(args) -> dict:
    """The schedule options of `optbench run`: the pipeline's (the schema's `schedule:` default, or
    the task's own, at constant lr for an entry that brings its own, as in
    workflows.engine.measurements.final), each replaced by the option given; `--warmup` is a share of
    the run's steps, as a profile's `schedule.warmup`, rounded to steps as there."""
    import optimizers
    import tasks
    from workflows.engine import config, schedule
    steps = args.steps or tasks.get(args.task).size(args.size)["steps"]
    options = schedule.run_options(schedule.for_task(args.task, config.defaults("schedule")), steps,
                                   optimizers.get(args.optimizer).takes_schedule)
    warmup = None if args.warmup is None else schedule.run_options({"warmup": args.warmup}, steps)["warmup"]
    given = {"schedule": args.schedule, "warmup": warmup, "lr_floor": args.lr_floor}
    return options | {k: v for k, v in given.items() if v is not None}


def cmd_memory(args) -> int:
    """The training-memory table of optimizers.memory for one parameter count."""
    import optimizers
    from optimizers import memory
    if args.optimizer is not None:
        optimizers.get(args.optimizer)   # KeyError names the valid ones
    names = [args.optimizer] if args.optimizer else optimizers.names()
    print(render_memory(args.params, names, args.precision or memory.DEFAULT_PRECISION))
    return 0


def render_memory(n_params: float, names: list[str], precision: str) -> str:
    import pandas as pd

    from optimizers import memory
    rows, notes = [], []
    for name in names:
        b = memory.breakdown(n_params, name, precision)
        rows.append({"optimizer": name, **{f"{c} GB": b[c] / memory.GB for c in memory.COMPONENTS},
                     "total GB": b["total"] / memory.GB, "B/param": b["bytes_per_param"]})
        if b["note"]:
            notes.append(f"- {name}: {b['note']}")
    lines = [f"Training memory, {memory.format_count(n_params)} parameters ({n_params:.4g}), precision "
             f"{precision} (GB = 1e9 bytes)", "", pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g")]
    if notes:
        lines += ["", "Notes:", *notes]
    lines += ["", memory.LEAVES_OUT]
    if precision == "mixed":
        lines.append(memory.SEED_OMITS)
    return "\n".join(lines)


def parameter_count(text: str) -> int:
    """An argparse type: optimizers.memory.parse_count (70e9, 70B, 1.3B, 125M)."""
    from optimizers.memory import parse_count
    try:
        return parse_count(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_new_optimizer(args) -> int:
    from workflows.engine.scaffold import new_optimizer
    path = new_optimizer(args.name, args.dir)
    print(f"wrote {path}\nnext: edit it, then `python -m pytest tests/test_optimizers.py -k {args.name}`, "
          f"then add {args.name!r} to a profile in workflows/config/ and run snakemake")
    return 0


def plan_config(configfile: str | None, overrides: list[str]) -> dict:
    """The profile's config as the Snakefile makes it: workflows.engine.config.load, the one loader."""
    from workflows.engine import config
    return config.load(configfile, overrides)


def cmd_plan(args) -> int:
    import pandas as pd

    from workflows.engine import plan
    from workflows.engine.config import PROFILES
    configfile = args.configfile
    if args.profile is not None:
        valid = sorted(p.stem for p in PROFILES.glob("*.yaml"))
        if args.profile not in valid:
            raise ValueError(f"--profile {args.profile!r}: unknown profile; valid: {', '.join(valid)}")
        configfile = str(PROFILES / f"{args.profile}.yaml")
    config = plan_config(configfile, args.config or [])
    names = sorted({task for _, task, _ in plan.jobs(config)})
    calibration = step_costs = None
    if args.flops or args.h100:
        from workflows.engine import flops
        step_costs = {t: flops.estimated_step_cost(t, config["size"]) for t in names}
    if args.h100:
        calibration = plan.gpu_estimate(step_costs, config)
    elif args.calibrate:
        check_device(config["device"], f"--calibrate on config device {config['device']!r}",
                     instead="--config device=cpu")
        calibration = plan.calibrate(names, config["size"], config["device"], config["threads"])
    rows = plan.plan_rows(config, calibration, step_costs)
    table = pd.DataFrame(rows)
    n_jobs = int(table["jobs"].sum()) + len(plan.CLOSING)
    print(f"profile {config['profile']}: {n_jobs} jobs ({len(plan.CLOSING)} of them "
          f"{', '.join(plan.CLOSING)}), {int(table['runs'].sum())} runs, {int(table['steps'].sum())} steps")
    print(table.to_markdown(index=False))
    if calibration and args.h100:
        wall = plan.gpu_wall_seconds(rows)
        print(f"estimated: {table['estimated_seconds'].sum():,.0f} job-seconds, {wall:,.0f} s "
              f"({wall / 3600:.1f} h) of wall time on one GPU shared by {plan.gpu_pool()} jobs "
              f"({plan.GPU_ESTIMATE}; start-up {plan.STARTUP_SECONDS} s a job)")
    elif calibration:
        wall = plan.wall_seconds(rows, config["threads"], args.cores)
        print(f"estimated: {table['estimated_seconds'].sum():,.0f} job-seconds, {wall:,.0f} s of wall time on "
              f"{args.cores} core(s) at perfect packing (calibrated here, {config['device']}; "
              f"start-up {plan.STARTUP_SECONDS} s a job)")
    return 0


def parser() -> argparse.ArgumentParser:
    import tasks   # the package alone: its names load on first use
    from workflows.engine.schedule import SCHEDULES
    p = Parser(prog="optbench", description="A reproducible benchmark suite for deep-learning optimizers.")
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list registered optimizers or tasks")
    ls.add_argument("what", choices=["optimizers", "tasks"])
    ls.set_defaults(func=cmd_list)
    run = sub.add_parser("run", help="one training run outside Snakemake")
    run.add_argument("--task", required=True)
    run.add_argument("--optimizer", required=True)
    run.add_argument("--seed", type=whole(0, MAX_SEED), default=0)
    run.add_argument("--steps", type=whole(1, MAX_STEPS), help="default: the task's steps at --size")
    run.add_argument("--size", default="smoke", choices=tasks.SIZES)
    run.add_argument("--lr", type=real(positive=False))
    run.add_argument("--hparam", type=parse_hparam, action="append", metavar="KEY=VALUE")
    run.add_argument("--loss-scale", type=real(positive=True), default=1.0)
    run.add_argument("--lr-scale", type=real(positive=True), default=1.0)
    run.add_argument("--device", type=device_name, default="cpu", help="cpu, cuda or cuda:N")
    # dtype, precision and loss scaling are checked by RunConfig, which names the valid ones
    run.add_argument("--dtype", default="float32", help="float32 or float64")
    run.add_argument("--precision", default="fp32", help="fp32, bf16 or fp16: autocast (fp32 master weights)")
    run.add_argument("--loss-scaling", default="none", help="none, static or dynamic")
    run.add_argument("--static-scale", type=real(positive=True), help="C of --loss-scaling static")
    run.add_argument("--fp32-precision", default="ieee", choices=("ieee", "tf32"),
                     help="fp32 matmuls and convolutions on CUDA: IEEE fp32 (default) or TF32")
    run.add_argument("--no-deterministic", dest="deterministic", action="store_false",
                     help="let CUDA pick nondeterministic algorithms (reruns no longer bit-identical)")
    pipeline = "default: the pipeline's (workflows/schemas/config.schema.yaml `schedule:`)"
    run.add_argument("--schedule", choices=SCHEDULES, help=pipeline)
    run.add_argument("--warmup", type=share, help=f"linear warm-up, a share of the steps in [0, 1) as in a "
                     f"profile; {pipeline}")
    run.add_argument("--lr-floor", type=real(positive=False), help=f"the last step's lr / the peak; {pipeline}")
    run.add_argument("--threads", type=whole(1, MAX_THREADS), help="torch threads")
    run.add_argument("--out", type=out_path, help="write the full result record (JSON) here")
    run.set_defaults(func=cmd_run)
    mem = sub.add_parser("memory", help="training memory of a model, per optimizer: parameters, gradients, "
                         "optimizer state, master weights (GB = 1e9 B)")
    mem.add_argument("--params", type=parameter_count, required=True, help="parameter count: 70e9, 70B, 125M")
    mem.add_argument("--optimizer", help="one registry entry (default: all)")
    mem.add_argument("--precision", help="fp32: 4+4 B/param + state; mixed: fp16/bf16 params and grads, "
                     "fp32 state and master (default)")
    mem.set_defaults(func=cmd_memory)
    pl = sub.add_parser("plan", help="a profile's jobs, runs, steps, FLOPs and estimated time, before it runs")
    which = pl.add_mutually_exclusive_group()
    which.add_argument("--profile", help="a profile in workflows/config/ by name")
    which.add_argument("--configfile", help="a config file, as snakemake --configfile takes it")
    pl.add_argument("--config", nargs="+", metavar="KEY=VALUE", help="overrides, as snakemake --config")
    pl.add_argument("--cores", type=whole(1, MAX_THREADS), default=os.cpu_count() or 1)
    pl.add_argument("--calibrate", action="store_true", help="time each task's step here: the estimate")
    pl.add_argument("--flops", action="store_true", help="FLOPs and bytes per step from each task's model")
    pl.add_argument("--h100", action="store_true", help="estimate the time on one H100 from FLOPs (no GPU needed)")
    pl.set_defaults(func=cmd_plan)
    new = sub.add_parser("new-optimizer", help="write optimizers/NAME.py from a template")
    new.add_argument("name")
    new.add_argument("--dir", help="where to write it (default: the optimizers package)")
    new.set_defaults(func=cmd_new_optimizer)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser().parse_args(negative_values(argv))
    except SystemExit as e:  # --help (0), or a usage error the parser has printed (2)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    try:
        return args.func(args)
    except (KeyError, ValueError) as e:
        print(f"optbench {args.command}: error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    except BrokenPipeError:   # `optbench plan | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
