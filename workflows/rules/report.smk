# The report: markdown, PNG figures and the environment, from results/tables/<profile>/ alone.


rule report:
    input:
        rules.aggregate.output,
    output:
        f"report/{PROFILE}/README.md",
    log:
        f"{LOGS}/report.log",
    benchmark:
        f"{BENCHMARKS}/report.tsv"
    script:
        "../scripts/report.py"
