"""A profile's config, loaded and checked in one place: the pipeline (workflows/rules/common.smk,
on the config Snakemake has read) and `optbench plan` (which reads the file and --config itself).

    check(config, configfiles, overrides)   # in place; what common.smk calls
    load(configfile, overrides)             # the file (cpu.yaml when none), --config K=V as Snakemake merges them, then check
    defaults(key)                           # the schema's default of a top-level key, nested defaults filled

`check` runs, in order: every config file names its `profile:` and holds no key twice;
`coerce` (the strings of --config and whole-number floats become the numbers the schema asks for);
`schema_errors` (what the JSON Schema, workflows/schemas/config.schema.yaml, refuses, one line per
bad value with its key); `fill_defaults` (the schema is the only place a default is written);
`check_config` (what the schema cannot say); `check_some_job` (a profile that runs
nothing is refused). The schema's enumerations restate the engine's
(tasks.SIZES, schedule.SCHEDULES, amp.PRECISIONS, harness.DTYPES, cli.DEVICE, cli.MAX_SEED):
tests/test_config.py checks they agree."""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import sys
from pathlib import Path

import yaml

import optimizers
import tasks
from workflows.engine import pairs
from workflows.engine import protocol

WORKFLOWS = Path(__file__).resolve().parents[1]
SCHEMA_PATH = WORKFLOWS / "schemas" / "config.schema.yaml"
PROFILES = WORKFLOWS / "config"
DEFAULT_PROFILE = PROFILES / "cpu.yaml"   # Snakefile's `configfile:` when no --configfile is given


class ConfigError(ValueError):
    pass


class _UniqueKeys(yaml.SafeLoader):
    """yaml.safe_load that refuses a mapping holding a key twice (YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        lines = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in lines:
                raise ConfigError(f"key {key!r} is given twice, on lines {lines[key]} and {line}; valid: once")
            lines[key] = line
        return super().construct_mapping(node, deep)


def read(path) -> dict:
    """A config file as a mapping; ConfigError (one line, the file named) on bad YAML or a repeated key."""
    try:
        config = yaml.load(Path(path).read_text(), Loader=_UniqueKeys)
    except ConfigError as e:
        raise ConfigError(f"config file {path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path}: not valid YAML ({' '.join(str(e).split())})") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path}: holds {type(config).__name__}; valid: a mapping of keys at top level")
    return config


@functools.cache
def _schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def schema() -> dict:
    """The profile schema, a fresh copy."""
    return copy.deepcopy(_schema())


def fill_defaults(value, schema_: dict):
    """`value` with the schema's `default` set for every missing property, at any depth (the
    defaults of a default included), as snakemake.utils.validate(set_default=True) fills them."""
    if isinstance(value, dict):
        properties = schema_.get("properties", {})
        for key, sub in properties.items():
            if "default" in sub and key not in value:
                value[key] = copy.deepcopy(sub["default"])
        extra = schema_.get("additionalProperties")
        for key, v in value.items():
            sub = properties.get(key, extra)
            if isinstance(sub, dict):
                fill_defaults(v, sub)
    elif isinstance(value, list) and isinstance(schema_.get("items"), dict):
        for v in value:
            fill_defaults(v, schema_["items"])
    return value


def defaults(key: str):
    """The value a profile that omits the top-level `key` gets: `defaults("schedule")` is the
    pipeline's schedule, which `optbench run` takes too."""
    return fill_defaults({}, schema())[key]


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
    and mappings at any depth: `snakemake --config final_seeds=[0,1,2]` passes ['0', '1', '2'];
    a whole-number float where it wants an integer becomes that integer, from a file as from --config.
    A string that is not a number is left as it is, for the schema to refuse with its key."""
    types = _types(schema)
    if isinstance(value, float) and "integer" in types and "number" not in types and value.is_integer():
        return int(value)   # `threads: 1.0`, `final_seeds: [0.0]`: the integer meant, not seed "0.0"
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
    schema's defaults filled in (`fill_defaults`). Raises ConfigError naming the value."""
    for path, x in _non_finite(config):
        raise ConfigError(f"config {_key(path)}: {x} is not a finite number")
    known = _known
    known("tasks", config["tasks"], tasks.names())
    known("optimizers", config["optimizers"], optimizers.names())
    for task, names_ in config["task_optimizers"].items():
        known("task_optimizers keys", [task], tasks.names())   # the schema's study lists name tasks a profile may not run
        known(f"task_optimizers.{task}", names_, optimizers.names())
    known("steptime.optimizers", config["steptime"].get("optimizers", []), optimizers.names())
    known("defaults_track.optimizers", config["defaults_track"].get("optimizers", []), optimizers.names())
    known("closed_task_optimizers", config["closed_task_optimizers"], tasks.names())
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
    known("tuning.full_horizon", config["tuning"]["full_horizon"], config["tasks"])
    try:
        protocol.check_tuning(config["tuning"], run)
        from workflows.engine.measurements import tune
        tune.check_sources(config)   # a pair that runs at another's selection finds it in the profile
        protocol.check_studies(config)   # the budget every tuned pair needs; horizon_check and repeats
    except ValueError as e:
        raise ConfigError(f"config {e}") from None
    both = [t for t in config["tuning"].get("horizon_check", {}) if t in config["tuning"]["full_horizon"]]
    if both:
        raise ConfigError(f"config tuning.horizon_check: {both[0]!r} is tuned at its full horizon (tuning.full_horizon): "
                          f"nothing to compare; valid: tasks tuned at steps_fraction "
                          f"{config['tuning']['steps_fraction']:g}, not {', '.join(config['tuning']['full_horizon'])}")
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


def _known(kind, given, valid) -> None:
    bad = [x for x in given if x not in valid]
    if bad:
        raise ConfigError(f"config {kind}: unknown {', '.join(map(repr, bad))}; valid: {', '.join(valid)}"
                          + "".join(f" ({f} failed to load: {e})" for f, e in broken_files()))


# Additions (`--config 'add_optimizers=[radam]'`, `add_tasks`): entries appended to a profile without
# retyping its lists. They join `optimizers` (`tasks`) and every list that stands for "the profile's
# optimizers" in a study or measurement, on each task the entry can run (pairs.compatible) and where
# it updates a tensor with its own rule (pairs.takes_any), so that no study silently leaves the new
# entry out. A closed list (`closed_task_optimizers`) is a study's fixed comparison, not the profile's
# optimizers: additions never extend it.
ADDITIONS = {"add_optimizers": "optimizers", "add_tasks": "tasks"}


def _why_not(task: str, name: str) -> str | None:
    """Why an addition does not join `task`'s list: the pair cannot run, or it would be the entry's
    fallback under another name (pairs.hollow builds the task's model: asked only for additions)."""
    return pairs.compatible(task, optimizers.get(name)) or pairs.hollow(task, name)


def check_additions(config: dict) -> None:
    """The added names exist in the registries, are not in the profile's lists already, and an added
    optimizer runs at least one of the profile's tasks with its own rule (else it would add no job)."""
    _known("add_optimizers", config["add_optimizers"], optimizers.names())
    _known("add_tasks", config["add_tasks"], tasks.names())
    for key, listed in ADDITIONS.items():
        already = [x for x in config[key] if x in config[listed]]
        if already:
            raise ConfigError(f"config {key}: {', '.join(map(repr, already))} already in the profile's {listed} "
                              f"({', '.join(config[listed])}); valid: a name not in that list")
    closed = set(config["closed_task_optimizers"])
    run = [t for t in config["tasks"] + config["add_tasks"]
           if t in tasks.names() and (t not in closed or t in config["add_tasks"])]   # unknown: check_config
    for name in config["add_optimizers"]:
        why = []
        for t in run:
            why.append(_why_not(t, name))
            if why[-1] is None:
                break
        if all(why):
            raise ConfigError(f"config add_optimizers: {name!r} can run none of the profile's tasks "
                              f"({'; '.join(why) or 'every list closed'}); valid: an optimizer that runs one of "
                              f"{', '.join(run)} with its own rule")


def apply_additions(config: dict) -> dict:
    """`config` with its additions appended to its lists, in place; idempotent. An added optimizer
    joins `optimizers` and the task_optimizers list of each task the profile runs, unless the task's
    list is closed (`closed_task_optimizers`: a task that followed `optimizers` gets the profile's
    list as it was) or the entry cannot run the task or would update none of its tensors with its own
    rule (then the task's list is written without it; `left_out` names the pair for the skipped
    table). An added task runs the profile's optimizers, less those that would update nothing of it.
    Then stability.overrides, precision (and its overrides) and steptime's and defaults_track's
    optimizers, where given (absent, they follow the tasks'), get each added entry that runs one of
    their tasks."""
    added, new_tasks = config.get("add_optimizers", []), config.get("add_tasks", [])
    if not added and not new_tasks:
        return config
    closed = set(config.get("closed_task_optimizers", []))
    before = [o for o in config["optimizers"] if o not in added]
    config["tasks"] += [t for t in new_tasks if t not in config["tasks"]]
    config["optimizers"] += [o for o in added if o not in config["optimizers"]]
    lists = config["task_optimizers"]
    for task in config["tasks"]:
        if task in closed and task not in new_tasks:
            lists.setdefault(task, list(before))   # closed: the additions do not join it
        elif task in lists:
            lists[task] += [o for o in added if o not in lists[task] and _why_not(task, o) is None]
        else:
            candidates = config["optimizers"] if task in new_tasks else added
            hollow = [o for o in candidates if pairs.compatible(task, optimizers.get(o)) is None
                      and pairs.hollow(task, o)]
            if hollow:
                lists[task] = [o for o in config["optimizers"] if o not in hollow]

    def extend(names: list, task_names) -> None:
        names += [o for o in added if o not in names
                  and any(t in config["tasks"] and o in pairs.optimizers_for(config, t) for t in task_names)]

    for measurement in ("stability", "precision"):
        m = config.get(measurement, {})
        if "optimizers" in m:
            extend(m["optimizers"], m["tasks"])
        for task, over in m.get("overrides", {}).items():
            if "optimizers" in over:
                extend(over["optimizers"], [task])
    for measurement in ("steptime", "defaults_track"):
        m = config.get(measurement, {})
        if "optimizers" in m:
            extend(m["optimizers"], m["tasks"])
    return config


def left_out(config: dict) -> list[tuple[str, str, str]]:
    """(task, optimizer, why) of every pair an addition would have made but `apply_additions` left
    out because the entry updates no tensor of the task with its own rule: the skipped table lists
    them beside the pairs that cannot run. Empty without additions (no model is built then)."""
    added, new_tasks = config.get("add_optimizers", []), config.get("add_tasks", [])
    closed = set(config.get("closed_task_optimizers", []))
    candidates = [(t, o) for t in config["tasks"] if t in new_tasks or t not in closed
                  for o in (config["optimizers"] if t in new_tasks else added)]
    return [(t, o, why) for t, o in candidates if o not in pairs.optimizers_for(config, t)
            and pairs.compatible(t, optimizers.get(o)) is None and (why := pairs.hollow(t, o))]


def additions(config: dict, base: dict) -> dict:
    """{"optimizers": [...], "tasks": [...]}: what `config` adds to the profile's file `base`."""
    return {listed: [x for x in config.get(key, []) if x not in base.get(key, [])] for key, listed in ADDITIONS.items()}


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
    from workflows.engine.measurements.precision import check_stress_scale   # lazily: it imports the engine
    for where, section in [("precision", p)] + [(f"precision.overrides.{t}", o) for t, o in p.get("overrides", {}).items()]:
        if "stress_scale" in section:
            try:
                check_stress_scale(section["stress_scale"])
            except ValueError as e:
                raise ConfigError(f"config {where}.{e}") from None


def check_some_job(config: dict) -> None:
    """A profile with no job to run (every task x optimizer pair it names skipped, no measurement
    left) is refused naming its tasks and optimizers, why each pair cannot run and the optimizers
    that can run its tasks: the pipeline would run an aggregation of nothing."""
    from workflows.engine import plan
    if plan.jobs(config):
        return
    run = {t: pairs.optimizers_for(config, t) for t in config["tasks"]}
    why = [pairs.compatible(t, optimizers.get(o)) for t, names_ in run.items() for o in names_]
    valid = "; ".join(f"for {t}: " + (", ".join(o for o in optimizers.names()
                                               if pairs.compatible(t, optimizers.get(o)) is None) or "none")
                      for t in run)
    given = ", ".join(f"{t} x {', '.join(names_) or 'no optimizer'}" for t, names_ in run.items())
    raise ConfigError(f"config tasks and optimizers: no pair can run, so no job would ({given}: "
                      f"{'; '.join(w for w in why if w) or 'no pair named'}); valid optimizers {valid}")


def _source(configfiles, overrides) -> str:
    source = ", ".join(map(str, configfiles)) or f"{DEFAULT_PROFILE.relative_to(WORKFLOWS.parent)}, the default"
    return source + (" with --config " + " ".join(f"{k}=..." for k in overrides) if overrides else "")


def check(config: dict, configfiles=(), overrides=()) -> dict:
    """The profile's config, checked and completed in place (Snakemake's `config` is the dict its
    rules read): `configfiles` are the files it was read from (each read again for repeated keys,
    which a YAML loader keeps silently), `overrides` the keys --config set (for the message).
    ConfigError names every bad value before any job runs."""
    check_profile_given(config, configfiles)
    for path in configfiles:
        read(path)
    schema_ = schema()
    config.update(coerce(config, schema_))
    check_schema(config, schema_, _source(configfiles, overrides))
    fill_defaults(config, schema_)
    check_additions(config)
    apply_additions(config)
    check_config(config)
    check_some_job(config)
    warn_broken()
    return config


def broken_files() -> list[tuple[str, str]]:
    """(file, error) of every optimizer or task module that failed to load (optimizers.broken, tasks.broken)."""
    return optimizers.broken() + tasks.broken()


_warned = False


def warn_broken() -> None:
    """One line on stderr a process naming each file that failed to load, once the config checked:
    a profile that names none of its entries runs (a name it would register is unknown, refused by
    `check_config` with the file named)."""
    global _warned
    if _warned:
        return
    _warned = True
    for f, e in broken_files():
        print(f"optbench: warning: {f} failed to load ({e}); its entries are left out", file=sys.stderr)


def parse_overrides(entries) -> dict:
    """--config K=V ... as Snakemake parses them (each V an int, a float, a boolean, else YAML with
    every scalar a string, else the string; nested mappings merged key by key)."""
    from snakemake.cli import parse_config
    for text in entries:
        if "=" not in text:
            raise ConfigError(f"--config {text!r} is not KEY=VALUE; valid: e.g. final_seeds=[0,1]")
    try:
        return parse_config(list(entries))
    except ValueError as e:
        raise ConfigError(f"--config {' '.join(entries)}: {e}; valid: KEY=VALUE, KEY an identifier") from None


def load(configfile=None, overrides=()) -> dict:
    """The config the pipeline runs with `snakemake [--configfile F] [--config K=V ...]`: the file
    (cpu.yaml when none is given), the overrides merged into it as Snakemake merges them, checked
    by `check`, so a config the pipeline refuses is refused here alike, with the same message."""
    from snakemake.utils import update_config
    path = Path(configfile) if configfile else DEFAULT_PROFILE
    if not path.is_file():
        raise ConfigError(f"--configfile {configfile}: no such file; valid: a YAML file, e.g. "
                          + ", ".join(str(p.relative_to(WORKFLOWS.parent)) for p in sorted(PROFILES.glob("*.yaml"))))
    config = read(path)
    given = parse_overrides(overrides)
    update_config(config, given)
    return check(config, [path] if configfile else [], list(given))


# Overrides never overwrite a published report. The report and tables of a profile (report/<profile>/,
# results/tables/<profile>/) are made by the profile's own file alone; a run whose configuration differs
# from it (--config, another file, a file of the same profile name with other content) writes them
# under `report_name`, its header listing the differences. Its records stay in results/runs/<profile>/:
# a record is named by its job (measurement, task, optimizer, seed): a run that asks for the same job
# with the same params reuses it; one that changes its params reruns it and replaces it.

def baseline(config: dict, configfiles=()) -> tuple[dict, str]:
    """The configuration the profile's published report is made from, completed as `check` completes
    one, and where it was read: workflows/config/<profile>.yaml when the project ships that profile,
    else the files given (a profile of the user's own: its report is its own, only --config overrides it)."""
    from snakemake.utils import update_config
    own = PROFILES / f"{config['profile']}.yaml"
    files = [own] if own.is_file() else [Path(f) for f in configfiles] or [DEFAULT_PROFILE]
    base = {}
    for path in files:
        update_config(base, read(path))   # several --configfile merge key by key, as Snakemake merges them
    schema_ = schema()
    base = apply_additions(fill_defaults(coerce(base, schema_), schema_))
    root = WORKFLOWS.parent
    return base, ", ".join(str(p.relative_to(root)) if p.resolve().is_relative_to(root) else str(p) for p in files)


_ABSENT = object()


def differences(config: dict, base: dict, path: tuple = ()) -> list[tuple[str, object, object]]:
    """(key, the profile's value, the value used) of every leaf where `config` differs from `base`,
    nested keys dotted (tuning.trials), a list compared whole; None where one side lacks the key."""
    out = []
    for key in sorted(set(config) | set(base), key=str):
        a, b = base.get(key, _ABSENT), config.get(key, _ABSENT)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(b, a, (*path, key))
        elif a != b:
            out.append((_key((*path, key)), None if a is _ABSENT else a, None if b is _ABSENT else b))
    return out


def with_additions(base: dict, config: dict) -> dict:
    """`base` (a profile's configuration) with `config`'s additions applied: what `config` is when
    its additions are its only change."""
    out = copy.deepcopy(base)
    for key in ADDITIONS:
        out[key] = list(config.get(key, []))
    return apply_additions(out)


def report_name(config: dict, base: dict) -> str:
    """The name of the run's report and tables: the profile's own when the configuration is its file's;
    else <profile>, `+<name>` for each added entry (`--config 'add_optimizers=[radam]'`: smoke+radam),
    then for any other difference `+<top-level keys changed>-<8 hex digits of the differences>`, the
    same overrides always the same name (`--config 'optimizers=[adam,sgd]'`: cpu+optimizers-<hash>)."""
    added = [x for names_ in additions(config, base).values() for x in names_]
    name = "".join([config["profile"], *(f"+{x}" for x in added)])
    diff = differences(config, with_additions(base, config))
    if not diff:
        return name
    digest = hashlib.sha256(json.dumps(diff, sort_keys=True, default=str).encode()).hexdigest()[:8]
    keys = ",".join(dict.fromkeys(k.split(".")[0].split("[")[0] for k, _, _ in diff))
    return f"{name}+{keys if len(keys) <= 40 else 'overrides'}-{digest}"


def override_rows(config: dict, base: dict, source: str) -> list[dict]:
    """The differences beyond the additions as the rows of the report's overrides table (values as
    JSON); the additions are listed by the report's header from the reuse table."""
    return [dict(key=k, profile_value=json.dumps(a), value_used=json.dumps(b), profile_file=source)
            for k, a, b in differences(config, with_additions(base, config))]
