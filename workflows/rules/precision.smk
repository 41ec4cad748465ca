# Mixed precision against fp32: bf16, fp16 unscaled, fp16 over static loss scales, fp16 with
# dynamic scaling, at the selected hyperparameters, over the profile's precision seeds.


def precision_for(task):
    """The profile's `precision` settings for `task`: its entry in `overrides` over the common ones."""
    p = dict(config.get("precision") or {"tasks": []})
    return p | p.pop("overrides", {}).get(task, {})


def precision_records(w=None):
    """The records the profile's `precision` key asks for: one per task × optimizer that can run."""
    tasks_ = (config.get("precision") or {"tasks": []})["tasks"]
    return [f"{RUNS}/precision/{t}/{o}.json" for t in tasks_ for _, o in pairs([t], precision_for(t)["optimizers"])]


rule precision:
    input:
        sources,
        summary=tune_summary,
    output:
        f"{RUNS}/precision/{{task}}/{{optimizer}}.json",
    log:
        f"{LOGS}/precision/{{task}}/{{optimizer}}.log",
    benchmark:
        f"{BENCHMARKS}/precision/{{task}}/{{optimizer}}.tsv"
    params:
        precision=lambda w: precision_for(w.task),
        size=config["size"],
        device=config["device"],
        schedule=config.get("schedule"),
        runs=RUNS,
    threads: config["threads"]
    resources:
        gpu=GPU,
    script:
        "../scripts/precision.py"
