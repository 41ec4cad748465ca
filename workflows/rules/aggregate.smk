# Every result record of the profile into tidy CSV tables: the report reads these alone.
from workflows.engine.aggregate import TABLES as TABLE_NAMES


from workflows.engine import reuse

# The jobs of the profile (workflows.engine.plan.jobs, from the measurements' own `jobs`: `optbench
# plan` counts the same list) and the records each writes.
JOBS = plan.jobs(config)

# Additions (--config 'add_optimizers=[radam]'): the pairs whose published rows (results/tables/<profile>/,
# in git) are honest to reuse are not run; aggregation merges their rows (workflows.engine.reuse).
# One decision a run: the main process makes it (recomputing the task data hashes) and writes it to
# DECISION; a process that reads this file again (a cluster executor's job) reads it from there.
ADDED = profile_config.additions(config, PROFILE_CONFIG)
PUBLISHED = f"results/tables/{PROFILE}"
DECISION = f"logs/{REPORT}/reuse_decision.json"
REUSE = None
main_process = workflow.exec_mode.name == "DEFAULT"
if any(ADDED.values()) and main_process:
    REUSE = reuse.decide(config, PUBLISHED, JOBS, reuse.data_hash_here(config["size"]))
    reuse.write_decision(REUSE, DECISION)
elif any(ADDED.values()):
    REUSE = reuse.read_decision(DECISION)
REUSED = {tuple(pair) for pair in REUSE.pairs} if REUSE else set()
RUN_JOBS = [job for job in JOBS if (job[1], job[2]) not in REUSED]
if REUSE and main_process:
    for line in reuse.messages(REUSE, ADDED, RUN_JOBS, REPORT):
        print(f"optbench: {line}", file=sys.stderr)
# the pairs an addition leaves out because the entry would update nothing there with its own rule
LEFT_OUT = profile_config.left_out(config)


def all_records(w=None):
    return [path for job in RUN_JOBS for path in measurement_records(*job)]


def published_tables(w=None):
    """The published tables a reuse merges: a change to one reruns the aggregation."""
    if not REUSED:
        return []
    names = [*TABLE_NAMES, reuse.PROVENANCE]
    return [f"{PUBLISHED}/{name}" for name in names if os.path.exists(f"{PUBLISHED}/{name}")]


# The tables of the report: an overridden run's add the differences from the profile's file.
TABLE_FILES = list(TABLE_NAMES + cost.TABLES + reuse.TABLES) + (["overrides.csv"] if OVERRIDES else [])
STAGING = f"results/tables/.staging/{REPORT}"


# Published tables are not deleted while aggregation fails. Snakemake deletes a job's declared outputs
# before it runs the job, so the aggregation writes its tables to STAGING, declared temp(), and
# publish_tables, which runs only once the aggregation has succeeded, moves them into TABLES. Snakemake
# still knows the tables as outputs (a missing or stale one reruns both jobs) and, once published,
# does not rerun the aggregation for its missing temp files; a failed aggregation leaves the previous
# tables as they were.
rule aggregate:
    input:
        records=all_records,
        published=published_tables,
    output:
        temp([f"{STAGING}/{name}" for name in TABLE_FILES]),
    log:
        f"logs/{REPORT}/aggregate.log",
    benchmark:
        f"results/benchmarks/{REPORT}/aggregate.tsv"
    params:
        skipped=SKIPPED + LEFT_OUT,
        optimizers=config["optimizers"],
        runs=RUNS,       # refused records go to RUNS/refused/: the next invocation recomputes them
        size=config["size"],
        benchmarks=BENCHMARKS,   # the measurement jobs' benchmark files and the invocations: cost tables
        jobs=RUN_JOBS,           # the jobs run here (a reuse's published pairs are not)
        reuse=REUSE.params() if REUSE else None,
        added=ADDED,
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
