"""Check the nested sections of a training config (``encoder_conf``, ``model_conf``, ``optim_conf``, ...) against
the classes they configure, before ESPnet builds anything.

ESPnet passes ``<name>_conf`` to the class chosen by ``<name>`` as keyword arguments, so a misspelt key ends in
``TypeError: __init__() got an unexpected keyword argument`` deep in ``build_model``, without the config's name.
``check_nested_confs`` names the config file, the section, the unknown keys and the keys the class takes.
"""
from __future__ import annotations

import inspect
from typing import Dict, Iterable, List, Optional, Tuple


class ConfigError(ValueError):
    """A config section with keys its class does not take."""


def _accepted(cls) -> Tuple[Optional[List[str]], bool]:
    """(keyword parameters of cls.__init__, whether it takes **kwargs)."""
    try:
        params = inspect.signature(cls.__init__ if inspect.isclass(cls) else cls).parameters.values()
    except (TypeError, ValueError):
        return None, True
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


def sections(task, args) -> Iterable[Tuple[str, str, type, dict]]:
    """(section, choice, class, conf) for each ``<name>_conf`` of the task's class choices, the model, the
    optimizers and the schedulers."""
    from espnet2.tasks.abs_task import optim_classes, scheduler_classes

    for choices in task.class_choices_list:
        name = choices.name
        value = getattr(args, name, None)
        conf = getattr(args, f"{name}_conf", None)
        if not conf or value is None or str(value).lower() in ("none", "null", "nil"):
            continue
        try:
            cls = choices.get_class(value)
        except ValueError:
            continue  # ESPnet names a bad choice itself
        if cls is not None:
            yield f"{name}_conf", str(value), cls, conf
    model_class = getattr(task, "model_class", None)
    if model_class is not None and getattr(args, "model_conf", None):
        yield "model_conf", model_class.__name__, model_class, args.model_conf
    for suffix in ("", "2", "3", "4"):
        optim = getattr(args, f"optim{suffix}", None)
        if optim and getattr(args, f"optim{suffix}_conf", None) and optim.lower() in optim_classes:
            yield f"optim{suffix}_conf", optim, optim_classes[optim.lower()], getattr(args, f"optim{suffix}_conf")
        scheduler = getattr(args, f"scheduler{suffix}", None)
        if (scheduler and getattr(args, f"scheduler{suffix}_conf", None)
                and scheduler.lower() in scheduler_classes):
            yield (f"scheduler{suffix}_conf", scheduler, scheduler_classes[scheduler.lower()],
                   getattr(args, f"scheduler{suffix}_conf"))


def check_nested_confs(task, args, skip: Dict[str, Iterable[str]] = None) -> None:
    """Raise ConfigError naming ``args.config`` (or the command line) for every section with unknown keys.

    ``skip``: keys of a section that the task consumes itself before the class sees them."""
    skip = skip or {}
    problems = []
    for section, choice, cls, conf in sections(task, args):
        names, var_keyword = _accepted(cls)
        if names is None or var_keyword:
            continue
        unknown = sorted(set(conf) - set(names) - set(skip.get(section, ())))
        if unknown:
            known = [n for n in names if n not in ("params",)]
            problems.append(f"{section}: unknown key(s) {', '.join(unknown)} for {choice} ({cls.__name__}; "
                            f"known: {', '.join(known)})")
    if problems:
        where = getattr(args, "config", None) or "the command line"
        raise ConfigError(f"{where}: " + "; ".join(problems))
