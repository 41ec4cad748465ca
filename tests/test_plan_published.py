"""The plan against the published cpu run, per rule (workflows.engine.plan.published_check): the
plan's model, given the jobs, runs and steps the run had and calibrated from its own records, beside
the seconds its jobs measured. The goal (±30 % per rule, issue 24) is a property of the published
data, which the report's cost section states with the rules outside it; this test checks the
check: every rule is compared, and the rules whose records calibrate the plan come back to their
own measured seconds (final and defaults together, since their runs pool into one step per
optimizer and their jobs into one final-run overhead; steptime: its setup). Anything else would
mean that the calibration and the estimate disagree on what such a job costs."""
import math
from pathlib import Path

import pytest

from workflows.engine import plan

PUBLISHED = Path(__file__).resolve().parent.parent / "results" / "tables" / "cpu"


@pytest.mark.skipif(not (PUBLISHED / "cost.csv").exists(), reason="no published cpu tables")
def test_the_plan_is_compared_with_measured_per_rule_and_reproduces_what_calibrated_it():
    rows = {r["rule"]: r for r in plan.published_check(PUBLISHED)}
    assert {"tune", "final", "defaults", "stability", "loop_options", "precision", "steptime", "baselines"} <= set(rows)
    for rule, r in rows.items():
        assert math.isfinite(r["plan_over_measured"]) and r["plan_over_measured"] > 0, rule
    # 1 % is far above float rounding of a few thousand summed seconds and far below any modelling
    # error; final and defaults miss exactly only by the precision study's fp32 arms in the pooled
    # step and the planned steps of the few final runs that diverged (the plan counts them whole)
    calibrated = [rows["final"], rows["defaults"]]
    together = sum(r["planned_seconds"] for r in calibrated) / sum(r["measured_seconds"] for r in calibrated)
    assert abs(together - 1) < 0.01
    assert abs(rows["steptime"]["plan_over_measured"] - 1) < 0.01
    # the predicted rules' ratios are measurements of the machine that ran the profile, not behaviour:
    # the report's cost section states which fall outside the plan's ±30 % goal, and no test asserts it
