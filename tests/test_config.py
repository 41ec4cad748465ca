"""Profile configs: --config strings coerced from the schema, the schema's messages naming the key,
what the schema cannot say (finite numbers, registry names), and the schema's defaults."""
import math
from pathlib import Path

import pytest
import yaml

from workflows.engine import config as profile_config

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflows/schemas/config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


def smoke() -> dict:
    """The smoke profile, fresh (validation fills defaults in place)."""
    return yaml.safe_load((SCHEMA_PATH.parent.parent / "config/smoke.yaml").read_text())


def filled(cfg):
    from snakemake.utils import validate
    validate(cfg, str(SCHEMA_PATH), set_default=True)
    return cfg


def numeric_leaves(schema, path=()):
    """(path, integer?) of every number the schema describes, in lists and mappings at any depth."""
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "integer" in types or "number" in types:
        yield path, "number" not in types
    if isinstance(schema.get("items"), dict):
        yield from numeric_leaves(schema["items"], (*path, 0))
    for key, sub in schema.get("properties", {}).items():
        yield from numeric_leaves(sub, (*path, key))
    if isinstance(schema.get("additionalProperties"), dict):
        yield from numeric_leaves(schema["additionalProperties"], (*path, "any-key"))


def nest(path, leaf):
    if not path:
        return leaf
    head, rest = path[0], path[1:]
    return [nest(rest, leaf)] if head == 0 else {head: nest(rest, leaf)}


def dig(x, path):
    for p in path:
        x = x[p]
    return x


LEAVES = list(numeric_leaves(SCHEMA))


def test_the_schema_has_numbers_in_lists_and_mappings():
    paths = [p for p, _ in LEAVES]
    assert ("final_seeds", 0) in paths and ("tuning", "seeds", 0) in paths and ("stability", "scales", 0) in paths
    assert ("tuning", "trials") in paths and ("threads",) in paths and ("precision", "static_scales", 0) in paths


@pytest.mark.parametrize("path, integer", LEAVES, ids=lambda x: ".".join(map(str, x)) if isinstance(x, tuple) else "")
def test_every_numeric_key_is_coerced_from_a_string(path, integer):
    value = "3" if integer else "1e-3"
    out = dig(profile_config.coerce(nest(path, value), SCHEMA), path)
    assert out == (3 if integer else 1e-3) and type(out) is (int if integer else float)
    # not a number: left for the schema, which names the key
    cfg = nest(path, "x")
    assert dig(profile_config.coerce(cfg, SCHEMA), path) == "x"
    key = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))
    assert f"config {key}: 'x' is not of type '{'integer' if integer else 'number'}'" in \
        profile_config.schema_errors(cfg, SCHEMA)


def test_the_readme_override_validates():
    cfg = profile_config.coerce(smoke() | {"final_seeds": ["0", "1", "2"], "tuning": {
        "trials": "4", "seeds": ["100", "101"], "steps_fraction": "0.5"}}, SCHEMA)
    assert cfg["final_seeds"] == [0, 1, 2] and cfg["tuning"]["steps_fraction"] == 0.5
    assert profile_config.schema_errors(cfg, SCHEMA) == []
    assert profile_config.coerce({"final_seeds": ["1.5"]}, SCHEMA)["final_seeds"] == ["1.5"]  # not an integer
    assert profile_config.coerce({"profile": "3"}, SCHEMA)["profile"] == "3"                  # a string key


@pytest.mark.parametrize("scales, message", [
    ([1.0, math.inf], r"stability.scales\[1\]: inf is greater than the maximum"),
    ([1.0, 0.0], r"stability.scales\[1\]: 0.0 is less than or equal to the minimum of 0"),
    ([1.0, -2.0], r"stability.scales\[1\]: -2.0 is less than or equal to the minimum of 0"),
    ([1.0, 1.0], r"stability.scales: \[1.0, 1.0\] has non-unique elements"),
])
def test_stability_scales_are_finite_and_positive(scales, message):
    cfg = smoke() | {"stability": smoke()["stability"] | {"scales": scales}}
    with pytest.raises(profile_config.ConfigError, match=message):
        profile_config.check_schema(cfg, SCHEMA)


def test_nan_is_refused_and_a_scale_past_float32_is_a_measurement():
    nan = smoke() | {"stability": smoke()["stability"] | {"scales": [1.0, math.nan]}}
    assert profile_config.schema_errors(nan, SCHEMA) == []    # JSON Schema cannot refuse NaN
    with pytest.raises(profile_config.ConfigError, match=r"stability.scales\[1\]: nan is not a finite number"):
        profile_config.check_config(filled(nan))
    # 1e40 overflows float32: those runs diverge, which the stability table counts; not an error
    big = smoke() | {"stability": {"tasks": ["quadratic-k1e2"], "scales": [1.0, 1e40], "dtype": "float32"}}
    profile_config.check_schema(big, SCHEMA)
    profile_config.check_config(filled(big))


def test_defaults_come_from_the_schema():
    cfg = filled({k: v for k, v in smoke().items() if k not in ("loop_options", "precision", "task_optimizers")}
                 | {"tuning": {"trials": 2, "seeds": [100, 101]}})
    assert cfg["steptime"]["baseline"] == "adamw"
    assert cfg["tuning"]["steps_fraction"] == 1.0 and cfg["tuning"]["search"] == {}
    assert cfg["schedule"] == {"name": "cosine", "warmup": 0.05, "floor": 0.1, "decay": 0.2}
    assert cfg["precision"] == {"tasks": [], "steps_fraction": 1.0, "overrides": {}}
    assert cfg["loop_options"] == {"tasks": [], "optimizer": "adamw", "steps": 30, "rounds": 3,
                                  "monitor_every": 10}
    assert cfg["stability"]["dtype"] == "float64" and cfg["stability"]["overrides"] == {} and cfg["task_optimizers"] == {}
    profile_config.check_config(cfg)


def test_step_time_baseline_is_checked():
    cfg = filled(smoke() | {"steptime": smoke()["steptime"] | {"baseline": "sgd"}})
    profile_config.check_config(cfg)
    cfg["steptime"]["baseline"] = "adamm"
    with pytest.raises(profile_config.ConfigError, match="steptime.baseline: unknown 'adamm'; valid: .*adamw"):
        profile_config.check_config(cfg)


def test_unknown_key_names_the_valid_ones():
    lines = profile_config.schema_errors(smoke() | {"seeds": [0]}, SCHEMA)
    assert len(lines) == 1 and "'seeds' was unexpected" in lines[0] and "valid: profile, size" in lines[0]


def test_a_config_file_without_profile_is_refused():
    with pytest.raises(profile_config.ConfigError, match="config file c.yaml: missing key 'profile'"):
        profile_config.check_profile_given({"size": "smoke"}, ["c.yaml"])
    profile_config.check_profile_given({"size": "smoke"}, [])   # no file: the default profile
    profile_config.check_profile_given({"profile": "x"}, ["c.yaml"])
