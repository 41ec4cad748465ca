# Every result record of the profile into tidy CSV tables: the report reads these alone.
from workflows.engine.aggregate import TABLES as TABLE_NAMES


# The jobs of the profile (workflows.engine.plan.jobs, from the measurements' own `jobs`: `optbench
# plan` counts the same list) and the records each writes.
JOBS = plan.jobs(config)


def all_records(w=None):
    return [path for job in JOBS for path in measurement_records(*job)]


# The tables of the report: an overridden run's add the differences from the profile's file.
TABLE_FILES = list(TABLE_NAMES + cost.TABLES) + (["overrides.csv"] if OVERRIDES else [])
STAGING = f"results/tables/.staging/{REPORT}"


# Published tables are not deleted while aggregation fails. Snakemake deletes a job's declared outputs
# before it runs the job, so the aggregation writes its tables to STAGING, declared temp(), and
# publish_tables, which runs only once the aggregation has succeeded, moves them into TABLES. Snakemake
# still knows the tables as outputs (a missing or stale one reruns both jobs) and, once published,
# does not rerun the aggregation for its missing temp files; a failed aggregation leaves the previous
# tables as they were.
rule aggregate:
    input:
        all_records,
    output:
        temp([f"{STAGING}/{name}" for name in TABLE_FILES]),
    log:
        f"logs/{REPORT}/aggregate.log",
    benchmark:
        f"results/benchmarks/{REPORT}/aggregate.tsv"
    params:
        skipped=SKIPPED,
        optimizers=config["optimizers"],
        runs=RUNS,       # refused records go to RUNS/refused/: the next invocation recomputes them
        size=config["size"],
        benchmarks=BENCHMARKS,   # the measurement jobs' benchmark files and the invocations: cost tables
        jobs=JOBS,
        config=config,           # the plan beside the measured cost
        overrides=OVERRIDES,     # the differences from the profile's file: the report's header
    script:
        "../scripts/aggregate.py"


rule publish_tables:
    input:
        rules.aggregate.output,
    output:
        [f"{TABLES}/{name}" for name in TABLE_FILES],
    localrule: True
    run:
        for staged, published in zip(input, output):
            os.replace(staged, published)   # atomic, each file whole; temp() cleanup finds them gone
