# Every result record of the profile into tidy CSV tables: the report reads these alone.
from workflows.engine.aggregate import TABLES as TABLE_NAMES


# The jobs of the profile (workflows.engine.plan.jobs, from the measurements' own `jobs`: `optbench
# plan` counts the same list) and the records each writes.
JOBS = plan.jobs(config)


def all_records(w=None):
    return [path for job in JOBS for path in measurement_records(*job)]


rule aggregate:
    input:
        all_records,
    output:
        [f"{TABLES}/{name}" for name in TABLE_NAMES + cost.TABLES],
    log:
        f"{LOGS}/aggregate.log",
    benchmark:
        f"{BENCHMARKS}/aggregate.tsv"
    params:
        skipped=SKIPPED,
        optimizers=config["optimizers"],
        runs=RUNS,       # refused records go to RUNS/refused/: the next invocation recomputes them
        size=config["size"],
        benchmarks=BENCHMARKS,   # the measurement jobs' benchmark files and the invocations: cost tables
        jobs=JOBS,
        config=config,           # the plan beside the measured cost
    script:
        "../scripts/aggregate.py"
