"""A profile's config, checked before any job runs.

`coerce` turns the strings Snakemake's --config gives inside lists and mappings into the numbers
the schema asks for; `schema_errors` reports what the JSON Schema (workflows/schemas/config.schema.yaml)
refuses, one line per bad value with its key; `check_config` checks what the schema cannot say;
`check_profile_given` refuses a config file without `profile:`."""
from __future__ import annotations

import math

import optimizers
import tasks
from workflows.engine import pairs
from workflows.engine import protocol, schedule


class ConfigError(ValueError):
    pass


def _types(schema: dict) -> list[str]:
    t = schema.get("type", [])
    return [t] if isinstance(t, str) else list(t)


def _number(value: str, integer: bool):
    """'3' -> 3, '1e-4' -> 0.0001, '1e3' -> 1000 for an integer; None if it is not a number."""
    try:
        return int(value.strip(), 10)
    except ValueError:
        pass
    try:
        x = float(value)
    except ValueError:
        return None
    if integer:
        return int(x) if math.isfinite(x) and x.is_integer() else None
    return x


def coerce(value, schema: dict):
    """`value` with every string where the schema wants a number (or a boolean) converted, in lists
    and mappings at any depth: `snakemake --config final_seeds=[0,1,2]` passes ['0', '1', '2'].
    A string that is not a number is left as it is, for the schema to refuse with its key."""
    types = _types(schema)
    if isinstance(value, str):
        if "integer" in types or "number" in types:
            x = _number(value, integer="number" not in types)
            return value if x is None else x
        if "boolean" in types and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return value
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [coerce(v, schema["items"]) for v in value]
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {k: coerce(v, properties[k]) if k in properties
                else coerce(v, extra) if isinstance(extra, dict) else v
                for k, v in value.items()}
    return value


def _key(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def schema_errors(config: dict, schema: dict) -> list[str]:
    """Every value the schema refuses, as 'config <key>: <what the schema says>' (the enum's
    message lists the valid values, a bound's message the bound)."""
    import jsonschema
    validator = jsonschema.Draft202012Validator(schema)
    lines = []
    for e in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]):
        message = e.message
        if e.validator == "additionalProperties" and isinstance(e.schema.get("properties"), dict):
            message += f"; valid: {', '.join(e.schema['properties'])}"
        lines.append(f"config {_key(e.absolute_path)}: {message}")
    return lines


def check_schema(config: dict, schema: dict, source: str = "") -> None:
    """Raises ConfigError listing every value the schema refuses."""
    lines = schema_errors(config, schema)
    if lines:
        where = f" ({source})" if source else ""
        raise ConfigError(f"invalid config{where}:\n  " + "\n  ".join(lines))


def check_profile_given(config: dict, configfiles) -> None:
    """A config file given with --configfile must name its profile: without one it would write
    into another profile's results and report."""
    if configfiles and "profile" not in config:
        files = ", ".join(map(str, configfiles))
        raise ConfigError(f"config file {files}: missing key 'profile' (it names results/runs/<profile>/ and "
                          f"report/<profile>/); add e.g. `profile: my-profile` to the file. The default "
                          f"profile (workflows/config/cpu.yaml) applies only when no --configfile is given.")


def _non_finite(x, path=()):
    if isinstance(x, float) and not math.isfinite(x):
        yield path, x
    elif isinstance(x, dict):
        for k, v in x.items():
            yield from _non_finite(v, (*path, k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _non_finite(v, (*path, i))


def check_config(config: dict) -> None:
    """What the JSON Schema cannot say: numbers are finite, names exist in the registries, seeds
    are disjoint, and the measurement task lists are subsets of the profile's tasks. Expects the
    schema's defaults filled in (validate(..., set_default=True)). Raises ConfigError naming the value."""
    for path, x in _non_finite(config):
        raise ConfigError(f"config {_key(path)}: {x} is not a finite number")

    def known(kind, given, valid):
        bad = [x for x in given if x not in valid]
        if bad:
            raise ConfigError(f"config {kind}: unknown {', '.join(map(repr, bad))}; valid: {', '.join(valid)}")

    known("tasks", config["tasks"], tasks.names())
    known("optimizers", config["optimizers"], optimizers.names())
    for task, names_ in config["task_optimizers"].items():
        known("task_optimizers keys", [task], config["tasks"])
        known(f"task_optimizers.{task}", names_, optimizers.names())
    known("steptime.optimizers", config["steptime"].get("optimizers", []), optimizers.names())
    known("steptime.baseline", [config["steptime"]["baseline"]], optimizers.names())
    for measurement in ("stability", "steptime", "loop_options", "defaults_track"):
        known(f"{measurement}.tasks", config[measurement]["tasks"], config["tasks"])
    name = config["loop_options"]["optimizer"]
    known("loop_options.optimizer", [name], optimizers.names())
    for task in config["loop_options"]["tasks"]:
        why = pairs.compatible(tasks.get(task), optimizers.get(name))
        if why:
            raise ConfigError(f"config loop_options: {why}")
    overlap = sorted(set(config["tuning"]["seeds"]) & set(config["final_seeds"]))
    if overlap:
        raise ConfigError(f"config tuning.seeds and final_seeds share {overlap}: tuning seeds must be "
                          f"disjoint from the seeds the report is computed on")
    run = sorted({o for t in config["tasks"] for o in config["task_optimizers"].get(t, config["optimizers"])})
    try:
        protocol.check_tuning(config["tuning"], run)
        schedule.check_profile(config["schedule"])
    except ValueError as e:
        raise ConfigError(f"config {e}") from None
    check_precision(config, known)
    known("train_precision keys", list(config["train_precision"]), config["tasks"])
    for task, precision in config["train_precision"].items():
        if precision != "fp32" and "autocast" not in tasks.get(task).provides:
            autocast = [t for t in config["tasks"] if "autocast" in tasks.get(t).provides]
            raise ConfigError(f"config train_precision.{task}: {precision!r} needs a task that runs under "
                              f"autocast; valid tasks: {', '.join(autocast) or 'none in this profile'}")
    st = config["stability"]
    known("stability.overrides keys", list(st.get("overrides", {})), st["tasks"])
    for task, over in st.get("overrides", {}).items():
        known(f"stability.overrides.{task}.optimizers", over.get("optimizers", []), optimizers.names())
    for name in config["optimizers"]:
        fallback = optimizers.get(name).fallback
        if fallback and fallback not in optimizers.names():
            raise ConfigError(f"optimizer {name!r} falls back to unknown {fallback!r}")


def check_precision(config: dict, known) -> None:
    """The precision measurement's tasks run in the profile and can autocast; its optimizers are
    registered (it runs those the profile tunes on the task: workflows.engine.plan.settings); a task's
    overrides name such a task."""
    p = config["precision"]
    if not p["tasks"]:
        return
    missing = [k for k in ("optimizers", "static_scales", "seeds") if k not in p]
    if missing:
        raise ConfigError(f"config precision: missing {', '.join(missing)} (needed when precision.tasks is set)")
    known("precision.tasks", p["tasks"], config["tasks"])
    known("precision.overrides keys", list(p.get("overrides", {})), p["tasks"])
    autocast = [t for t in tasks.names() if "autocast" in tasks.get(t).provides]
    for task in p["tasks"]:
        if "autocast" not in tasks.get(task).provides:
            raise ConfigError(f"config precision.tasks: task {task!r} cannot run in fp16/bf16 autocast; "
                              f"valid: {', '.join(autocast)}")
        names_ = p.get("overrides", {}).get(task, {}).get("optimizers", p["optimizers"])
        known(f"precision.optimizers of {task}", names_, optimizers.names())
