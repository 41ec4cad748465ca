# Every result record of the profile into tidy CSV tables: the report reads these alone.
from tasks.runner.aggregate import TABLES as TABLE_NAMES


def all_records(w=None):
    found = [f"{RUNS}/final/{t}/{o}/seed{s}.json" for t, o in pairs() for s in config["final_seeds"]]
    found += [f"{RUNS}/tune/{t}/{o}.json" for t, o in pairs()]
    found += [f"{RUNS}/defaults/{t}/{o}/seed{s}.json" for t, o in pairs(config["defaults_track"]["tasks"])
              for s in config["final_seeds"]]
    found += [f"{RUNS}/stability/{t}/{o}.json" for t, o in pairs(config["stability"]["tasks"])]
    found += [f"{RUNS}/steptime/{t}/{o}.json"
              for t, o in pairs(config["steptime"]["tasks"], config["steptime"].get("optimizers"))]
    lo = config["loop_options"]
    found += [f"{RUNS}/loop_options/{t}/{lo['optimizer']}.json" for t in lo["tasks"]]
    return found


rule aggregate:
    input:
        all_records,
    output:
        [f"{TABLES}/{name}" for name in TABLE_NAMES],
    log:
        f"{LOGS}/aggregate.log",
    params:
        skipped=SKIPPED,
        optimizers=config["optimizers"],
        runs=RUNS,       # refused records go to RUNS/refused/: the next invocation recomputes them
        size=config["size"],
    script:
        "../scripts/aggregate.py"
