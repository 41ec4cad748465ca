# The report: markdown, PNG figures and the environment, from results/tables/<profile>/ alone.


rule report:
    input:
        TABLES,
    output:
        f"report/{PROFILE}/README.md",
    log:
        f"{LOGS}/report.log",
    params:
        profile=PROFILE,
    script:
        "../scripts/report.py"
