"""Snakemake job: result records -> tidy CSV tables; benchmark files and the plan -> cost tables."""
import sys
from pathlib import Path

from workflows.engine import aggregate, cost, flops, plan, records

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
p = snakemake.params  # noqa: F821
out = Path(snakemake.output[0]).parent  # noqa: F821
try:
    aggregate.write_tables(snakemake.input, out,  # noqa: F821
                           skipped=p.skipped, optimizer_names=p.optimizers, runs_dir=p.runs, size=p.size)
except records.RecordError as e:
    print(f"aggregate: {e}", file=sys.__stderr__)   # on the terminal, not only in the log
    raise
# The plan as `optbench plan` makes it before a run, calibrated now (the machine is quiet: this
# job runs alone, after every measurement) and never from this run's benchmark files.
config = p.config
task_names = sorted({task for _, task, _ in p.jobs})
calibration = plan.calibrate(task_names, config["size"], config["device"], config["threads"])
step_costs = {t: flops.step_cost(t, config["size"], config["device"]) for t in task_names}
rows = plan.plan_rows(config, calibration, step_costs)
cost.write_tables(p.jobs, p.benchmarks, out, rows, config["threads"])
