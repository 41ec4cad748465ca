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
    return profile_config.fill_defaults(cfg, SCHEMA)


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
                 | {"tuning": {"trials": 12, "seeds": [100, 101]}})
    assert cfg["steptime"]["baseline"] == "adamw"
    assert cfg["tuning"]["steps_fraction"] == 1.0 and cfg["tuning"]["search"] == {}
    assert cfg["schedule"] == {"name": "cosine", "warmup": 0.05, "floor": 0.1, "decay": 0.2}
    assert cfg["precision"] == {"tasks": [], "steps_fraction": 1.0, "overrides": {}, "stress_scale": 2.0 ** -20}
    assert cfg["loop_options"] == {"tasks": [], "optimizer": "adamw", "steps": 30, "rounds": 3,
                                  "monitor_every": 10}
    assert cfg["stability"]["dtype"] == "float64" and cfg["stability"]["overrides"] == {}
    assert cfg["task_optimizers"] == {"lm-stdlib-qk": ["muonclip"]}   # the study's, in every profile
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


PROFILES = sorted(p.stem for p in profile_config.PROFILES.glob("*.yaml"))


@pytest.mark.parametrize("profile", PROFILES)
def test_the_defaults_are_filled_as_snakemake_fills_them(profile):
    from snakemake.utils import validate
    ours = profile_config.fill_defaults(profile_config.read(profile_config.PROFILES / f"{profile}.yaml"), SCHEMA)
    theirs = profile_config.read(profile_config.PROFILES / f"{profile}.yaml")
    validate(theirs, str(SCHEMA_PATH), set_default=True)
    assert ours == theirs


def test_the_schemas_enumerations_are_the_engines():
    import tasks
    from workflows.engine import amp, cli, harness, schedule
    p = SCHEMA["properties"]
    assert tuple(p["size"]["enum"]) == tasks.SIZES
    assert tuple(p["schedule"]["properties"]["name"]["enum"]) == schedule.SCHEDULES
    assert set(p["train_precision"]["additionalProperties"]["enum"]) == set(amp.PRECISIONS) - {"fp16"}  # fp16 needs loss scaling
    assert p["stability"]["properties"]["dtype"]["enum"] == list(harness.DTYPES)
    assert p["device"]["pattern"] == f"^({cli.DEVICE.pattern})$"
    seeds = [p["final_seeds"]["items"], p["tuning"]["properties"]["seeds"]["items"],
             p["precision"]["properties"]["seeds"]["items"],
             p["precision"]["properties"]["overrides"]["additionalProperties"]["properties"]["seeds"]["items"]]
    assert all(s["minimum"] == 0 and s["maximum"] == cli.MAX_SEED for s in seeds)


def test_the_cli_runs_the_pipelines_schedule(monkeypatch):
    from workflows.engine import cli
    args = cli.parser().parse_args(["run", "--task", "cnn-digits", "--optimizer", "adamw", "--steps", "200"])
    assert cli.run_schedule(args) == {"schedule": "cosine", "warmup": 10, "lr_floor": 0.1, "decay": 0.2}
    assert profile_config.defaults("schedule") == {"name": "cosine", "warmup": 0.05, "floor": 0.1, "decay": 0.2}
    args = cli.parser().parse_args(["run", "--task", "cnn-digits", "--optimizer", "adamw", "--steps", "200",
                                    "--schedule", "constant", "--warmup", "0"])
    assert cli.run_schedule(args) == {"schedule": "constant", "warmup": 0, "lr_floor": 0.1, "decay": 0.2}


@pytest.mark.parametrize("schedule, message", [
    ({"name": "linear"}, r"config schedule.name: 'linear' is not one of \['constant', 'cosine', 'wsd'\]"),
    ({"name": "cosine", "warmup": 1.5}, r"config schedule.warmup: 1.5 is greater than or equal to the maximum of 1"),
    ({"name": "cosine", "floor": 2.0}, r"config schedule.floor: 2.0 is greater than the maximum of 1"),
    ({"name": "wsd", "decay": 0.0}, r"config schedule.decay: 0.0 is less than or equal to the minimum of 0"),
    ({"name": "cosine", "min_lr": 0.1}, r"'min_lr' was unexpected\).*valid: name, warmup, floor, decay"),
])
def test_an_undefined_schedule_is_refused(schedule, message):
    with pytest.raises(profile_config.ConfigError, match=message):
        profile_config.check_schema(smoke() | {"schedule": schedule}, SCHEMA)


@pytest.mark.parametrize("key, value, expected", [
    ("final_seeds", [0.0, 1.0], [0, 1]), ("threads", 1.0, 1), ("final_seeds", ["1e3"], [1000]),
])
def test_a_whole_number_float_is_the_integer_it_means(key, value, expected):
    out = profile_config.coerce(smoke() | {key: value}, SCHEMA)[key]
    assert out == expected and all(type(x) is int for x in (out if isinstance(out, list) else [out]))


def test_a_fractional_or_huge_seed_is_refused():
    lines = profile_config.schema_errors(profile_config.coerce(smoke() | {"final_seeds": [0, 1.5, 1e30]}, SCHEMA), SCHEMA)
    assert any("final_seeds[1]: 1.5 is not of type 'integer'" in x for x in lines), lines
    assert any("final_seeds[2]: 1000000000000000019884624838656 is greater than the maximum of 4294967295" in x
               for x in lines), lines


def test_a_key_given_twice_is_refused_naming_its_lines(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("profile: x\nsize: smoke\ntuning:\n  trials: 2\nsize: cpu\n")
    with pytest.raises(profile_config.ConfigError, match=r"c.yaml: key 'size' is given twice, on lines 2 and 5"):
        profile_config.read(f)
    f.write_text("profile: x\ntuning: {trials: 2, trials: 4}\n")
    with pytest.raises(profile_config.ConfigError, match=r"key 'trials' is given twice, on lines 2 and 2"):
        profile_config.load(str(f))


def test_the_loader_merges_nested_overrides_as_snakemake_does():
    cfg = profile_config.load(str(profile_config.PROFILES / "smoke.yaml"), ["tuning={trials: 12}", "threads=1.0"])
    assert cfg["tuning"]["trials"] == 12 and cfg["tuning"]["seeds"] == smoke()["tuning"]["seeds"]
    assert cfg["threads"] == 1 and type(cfg["threads"]) is int


def test_malformed_yaml_is_one_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("profile: x\ntasks: [a, b\n")
    with pytest.raises(profile_config.ConfigError, match=r"config file .*bad.yaml: not valid YAML \(") as e:
        profile_config.read(f)
    assert "\n" not in str(e.value)


def test_a_profile_where_no_pair_can_run_is_refused_naming_them(tmp_path):
    cfg = smoke() | {"tasks": ["embeddings-zipf-sparse"], "optimizers": ["adam", "lion"], "task_optimizers": {},
                     "defaults_track": {"tasks": []}, "stability": {"tasks": [], "scales": [1.0]},
                     "steptime": {"tasks": [], "steps": 10, "warmup": 3, "rounds": 3}, "loop_options": {"tasks": []},
                     "precision": {"tasks": []}}
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(cfg))
    with pytest.raises(profile_config.ConfigError) as e:
        profile_config.load(str(f))
    line = str(e.value)
    assert "\n" not in line and "no pair can run, so no job would (embeddings-zipf-sparse x adam, lion: " in line
    assert "requires sparse, which lion does not accept" in line
    assert "valid optimizers for embeddings-zipf-sparse: adagrad, sgd, sparse-adam" in line


@pytest.mark.parametrize("where", ["precision={stress_scale: 0.3}", "precision={overrides: {cnn-digits: {stress_scale: 0.3}}}"])
def test_a_stress_scale_that_is_not_a_power_of_two_is_refused_before_any_job(where):
    """The stress condition's exact scaling needs a power of 2 in (0, 1]: refused when the config
    loads, naming the key, not when the precision job starts."""
    with pytest.raises(profile_config.ConfigError, match=r"config precision.*stress_scale=.*power of 2"):
        profile_config.load(str(profile_config.PROFILES / "cpu.yaml"), [where])
