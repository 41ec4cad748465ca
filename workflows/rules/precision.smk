# Mixed precision against fp32: bf16, fp16 unscaled, fp16 over static loss scales, fp16 with
# dynamic scaling, at the selected hyperparameters, over the profile's precision seeds.


def precision_records(w=None):
    """The records the profile's `precision` key asks for: one per task × optimizer that can run."""
    p = config.get("precision") or {"tasks": [], "optimizers": []}
    return [f"{RUNS}/precision/{t}/{o}.json" for t, o in pairs(p["tasks"], p["optimizers"])]


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
        precision=config.get("precision"),
        size=config["size"],
        device=config["device"],
        schedule=config.get("schedule"),
        runs=RUNS,
    threads: config["threads"]
    resources:
        gpu=GPU,
    script:
        "../scripts/precision.py"
