# optbench: every optimizer on every task, measured, and a report generated from the results.
#   snakemake --cores all                                    # default profile (cpu)
#   snakemake --cores all --configfile workflows/config/smoke.yaml
# The profile names the results (results/runs/<profile>/) and the report (report/<profile>/); a
# configuration that differs from the profile's file writes its report under a derived name.
import os

from snakemake.utils import min_version

min_version("8.0")


# The default profile only when no --configfile is given: Snakemake merges config files key by key,
# so a default loaded under a given file would leak its keys (task lists, step-time optimizers) into
# it, and a file without `profile:` would write into the cpu profile's results and report
# (common.smk refuses such a file). --config overrides apply on top of either.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "workflows/config/cpu.yaml")


include: "workflows/rules/common.smk"
include: "workflows/rules/tune.smk"
include: "workflows/rules/tune_horizon.smk"
include: "workflows/rules/tune_repeat.smk"
include: "workflows/rules/train.smk"
include: "workflows/rules/stability.smk"
include: "workflows/rules/steptime.smk"
include: "workflows/rules/loop_options.smk"
include: "workflows/rules/precision.smk"
include: "workflows/rules/baselines.smk"
# A new measurement: its module in workflows/engine/measurements/ (its run, rows, jobs and cost:
# the plan, the tables and the DAG's targets follow from it) and its rule file, included here.
include: "workflows/rules/aggregate.smk"
include: "workflows/rules/report.smk"


# The default target names every record and table, not only the report: Snakemake reruns a job
# whose output is missing only when something asks for that output, so with the report alone a
# deleted record (or table) would stay missing while the report
# looked up to date. Aggregation moves a record it refuses aside (results/runs/<profile>/refused/),
# so that the next invocation sees it missing and recomputes it.
rule all:
    input:
        f"report/{REPORT}/README.md",
        rules.publish_tables.output,
        all_records,
    default_target: True


# The profile's wall time and cores, which Snakemake does not record: one line per invocation of a
# real run (a dry run calls no handler) in results/benchmarks/<profile>/invocations.jsonl, its start
# now and its end once it finishes or fails. Aggregation sums them (a resumed profile is several
# invocations) and divides the jobs' busy core-seconds by wall x cores.
onstart:
    device_preflight()   # common.smk: the device checked before any job (and before this line's record)
    cost.mark_invocation(BENCHMARKS, "start", workflow.cores)

onsuccess:
    cost.mark_invocation(BENCHMARKS, "success", workflow.cores)

onerror:
    cost.mark_invocation(BENCHMARKS, "error", workflow.cores)
