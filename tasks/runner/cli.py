"""The `optbench` command: list the registries, run one training run, size optimizer memory.

    optbench list optimizers|tasks
    optbench memory --params 70e9 [--optimizer NAME] [--precision fp32|mixed]
    optbench new-optimizer NAME
    optbench run --task T --optimizer O [--seed S] [--steps N] [--lr X] [--hparam K=V ...]
                 [--loss-scale C] [--lr-scale C] [--size smoke|cpu|gpu] [--device D] [--out FILE]
"""
from __future__ import annotations

import argparse
import ast
import json
import sys


def parse_hparam(text: str) -> tuple[str, object]:
    """K=V with V a Python literal (0.9, (0.9, 0.99), True); anything else stays a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--hparam {text!r}: expected KEY=VALUE, e.g. momentum=0.9")
    key, value = text.split("=", 1)
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def list_optimizers() -> str:
    import pandas as pd

    import optimizers
    rows = []
    for name in optimizers.names():
        s = optimizers.get(name)
        fp32 = s.state_bytes((1024, 1024), __import__("torch").float32) / (1024 * 1024)
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
    return 0


def cmd_run(args) -> int:
    from tasks.runner import records
    from tasks.runner.harness import RunConfig, train
    hparams = dict(args.hparam or [])
    if args.lr is not None:
        hparams["lr"] = args.lr
    cfg = RunConfig(task=args.task, optimizer=args.optimizer, size=args.size, seed=args.seed, steps=args.steps,
                    hparams=hparams, loss_scale=args.loss_scale, lr_scale=args.lr_scale, device=args.device,
                    dtype=args.dtype)
    record = train(cfg, threads=args.threads, progress=True)
    if args.out:
        records.write(record, args.out)
    summary = {k: record[k] for k in ("final_metric", "final_loss", "steps_to_target", "diverged", "diverge_reason")}
    summary["metric"] = record["task"]["metric"]
    summary["step_time_median_s"] = record["step_time"]["median"]
    summary["state_bytes"] = record["state_bytes"]["measured"]
    print(json.dumps(summary, indent=1))
    return 0


def cmd_new_optimizer(args) -> int:
    from optimizers.scaffold import new_optimizer
    path = new_optimizer(args.name, args.dir)
    print(f"wrote {path}\nnext: edit it, then `python -m pytest tests/test_optimizers.py -k {args.name}`, "
          f"then add {args.name!r} to a profile in workflows/config/ and run snakemake")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="optbench", description="A reproducible benchmark suite for deep-learning optimizers.")
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list registered optimizers or tasks")
    ls.add_argument("what", choices=["optimizers", "tasks"])
    ls.set_defaults(func=cmd_list)
    run = sub.add_parser("run", help="one training run outside Snakemake")
    run.add_argument("--task", required=True)
    run.add_argument("--optimizer", required=True)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--steps", type=int)
    run.add_argument("--size", default="smoke", choices=["smoke", "cpu", "gpu"])
    run.add_argument("--lr", type=float)
    run.add_argument("--hparam", type=parse_hparam, action="append", metavar="KEY=VALUE")
    run.add_argument("--loss-scale", type=float, default=1.0)
    run.add_argument("--lr-scale", type=float, default=1.0)
    run.add_argument("--device", default="cpu")
    run.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    run.add_argument("--threads", type=int)
    run.add_argument("--out", help="write the full result record (JSON) here")
    run.set_defaults(func=cmd_run)
    sub.add_parser("memory", add_help=False, help="training memory of a large model, per optimizer "
                         "(optbench memory --help)")
    new = sub.add_parser("new-optimizer", help="write optimizers/NAME.py from a template")
    new.add_argument("name")
    new.add_argument("--dir", help="where to write it (default: the optimizers package)")
    new.set_defaults(func=cmd_new_optimizer)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["memory"]:  # its own parser (optimizers.memory), options included
        from optimizers import memory
        return memory.main(argv[1:])
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (KeyError, ValueError) as e:
        print(f"optbench: error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
