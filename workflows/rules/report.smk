# The report: markdown, PNG figures and the environment, from results/tables/<profile>/ alone.


rule report:
    input:
        rules.aggregate.output,
    output:
        f"report/{PROFILE}/README.md",
    log:
        f"{LOGS}/report.log",
    script:
        "../scripts/report.py"
