"""The join of the two registries: which task x optimizer pairs can run, and which a profile runs.
Tasks and optimizers know nothing of each other; an optimizer declares what it `needs`, a task what
it `provides` and `requires`, and this module matches them."""
from __future__ import annotations

import functools

import optimizers
import tasks


def compatible(task: "Task | str", spec) -> str | None:
    """None if the optimizer `spec` can run `task`; otherwise why not (the pipeline skips the pair
    and the report says so)."""
    task = tasks.get(task) if isinstance(task, str) else task
    missing = (set(spec.needs) & {"hessian", "attention_logits"}) - set(task.provides)
    if missing:
        return f"{spec.name} needs {', '.join(sorted(missing))}, which task {task.name} does not provide"
    if "sparse_only" in spec.needs and "sparse" not in task.requires:
        return f"{spec.name} needs sparse gradients, which task {task.name} does not produce"
    lacking = set(task.requires) - set(spec.needs)
    if lacking:
        return f"task {task.name} requires {', '.join(sorted(lacking))}, which {spec.name} does not accept"
    return None


def optimizers_for(config: dict, task: str) -> list[str]:
    return config["task_optimizers"].get(task, config["optimizers"])


def pairs(config: dict, task_list=None, optimizer_list=None) -> list[tuple[str, str]]:
    """(task, optimizer) pairs to run: the pairs that can run (tasks.compatible)."""
    tasks_ = config["tasks"] if task_list is None else task_list
    return [(t, o) for t in tasks_ for o in (optimizer_list or optimizers_for(config, t))
            if compatible(t, optimizers.get(o)) is None]


@functools.cache
def named_parameters(task: str) -> tuple:
    """The task's trainable tensors, its model built at smoke size on the CPU (which tensors a model
    has, their names and number of dimensions, does not depend on its size); once a process."""
    model = tasks.get(task).make("smoke", seed=0).model
    return tuple((n, p) for n, p in model.named_parameters() if p.requires_grad)


def takes_any(task: str, optimizer: str) -> bool:
    """Whether the entry updates at least one of the task's tensors with its own rule. An entry with
    a parameter policy (`OptimizerSpec.takes`) hands what it refuses to its fallback; where it takes
    nothing, the pair is the fallback under another name. Builds the task's model (seconds for the
    LM), so it is asked only where additions are applied (config.apply_additions), not on every DAG."""
    spec = optimizers.get(optimizer)
    return spec.takes is None or any(spec.takes(n, p) for n, p in named_parameters(task))


def hollow(task: str, optimizer: str) -> str | None:
    """Why the pair updates nothing with the entry's own rule, or None (`takes_any`)."""
    if takes_any(task, optimizer):
        return None
    return (f"{optimizer} updates no tensor of task {task} with its own rule (every tensor would go to "
            f"its fallback {optimizers.get(optimizer).fallback})")
