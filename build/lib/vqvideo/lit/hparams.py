"""Typed nested configs as stage arguments, stored as plain values in checkpoints.

A stage module takes its model's architecture as one frozen dataclass (e.g. `TopPriorConfig`): the CLI parses
`model.init_args.prior: {...}` into it, Python callers pass it, and a checkpoint's hyperparameters hold it as
a plain dict, so `torch.load(weights_only=True)` reads it and `load_stage` rebuilds the module from it.
"""

from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass
from typing import Any, TypeVar

ConfigT = TypeVar("ConfigT")


def as_config(config_class: type[ConfigT], value: ConfigT | dict[str, Any]) -> ConfigT:
    """A config dataclass from itself or from its plain dict (a checkpoint's hyperparameters); unknown keys are
    one clear error naming them."""
    if isinstance(value, config_class):
        return value
    known = {field.name for field in fields(config_class)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"{config_class.__name__} has no field(s) {unknown}; known: {sorted(known)}")
    return config_class(**{key: tuple(item) if isinstance(item, list) else item for key, item in value.items()})


def plain(config: Any) -> dict[str, Any]:
    """A config dataclass as a plain dict (tuples kept: weights_only loading accepts them)."""
    if not is_dataclass(config):
        raise TypeError(f"expected a config dataclass, got {type(config).__name__}")
    return asdict(config)
