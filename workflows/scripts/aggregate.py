"""Snakemake job: result records -> tidy CSV tables; benchmark files and the plan -> cost tables; the
differences from the profile's file, if any -> overrides.csv. Written to the staging directory
(aggregate.smk's publish_tables moves them into place)."""
import sys
from pathlib import Path

import pandas as pd

from workflows.engine import aggregate, cost, plan, records, reuse

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
p = snakemake.params  # noqa: F821
out = Path(snakemake.output[0]).parent  # noqa: F821
try:
    aggregate.write_tables(snakemake.input.records, out,  # noqa: F821
                           skipped=p.skipped, optimizer_names=p.optimizers, runs_dir=p.runs, size=p.size)
except records.RecordError as e:
    print(f"aggregate: {e}", file=sys.__stderr__)   # on the terminal, not only in the log
    raise
# The plan (workflows.engine.plan.aggregation_rows): calibrated from the records just tabled and the
# jobs' benchmark files, of the jobs run here (with additions, the reused pairs' jobs ran elsewhere
# and are neither measured nor planned), its FLOPs counted on the CPU: aggregation needs no device.
config = p.config
job_files = [cost.benchmark_path(p.benchmarks, *job) for job in p.jobs]
try:
    run_rows = pd.read_csv(out / "runs.csv").to_dict("records")
except pd.errors.EmptyDataError:   # a profile whose every pair is skipped
    run_rows = []
rows = plan.aggregation_rows(config, run_rows, cost.benchmark_rows(job_files, p.benchmarks),
                             plan.table_rows(out / "precision.csv"), p.jobs)
cost.write_tables(p.jobs, p.benchmarks, out, rows, config["threads"])
# the published rows of the pairs reused (additions), the reuse table and these tables' provenance
reuse.merge(out, p.reuse, aggregate.ROW_TABLES, config, p.jobs, p.added)
if p.overrides:   # a run whose configuration differs from its profile's file: the report's header says how
    pd.DataFrame(p.overrides).to_csv(out / "overrides.csv", index=False)
