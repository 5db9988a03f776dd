"""Checking a prior's latent facts against the code cache it trains on.

Codebook sizes and latent shapes are facts of the cache (its manifest's `code_spec`); a prior records them as
init args (paper defaults, so configs build on `meta` without a cache) and refuses to fit on a cache that
disagrees, with one message naming every YAML key to change.
"""

from __future__ import annotations

from typing import Any


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, list)) else value


def as_dict(code_spec) -> dict:
    """A CodesDataModule's `code_spec` (a dict or an object with `as_dict()`) as a plain dict."""
    return code_spec.as_dict() if hasattr(code_spec, "as_dict") else dict(code_spec)


def check_against_cache(stage: str, facts: dict[str, tuple[Any, Any]]) -> None:
    """facts: YAML key → (the module's value, the cache's value). Raises ValueError listing every mismatch."""
    mismatches = [
        f"model.init_args.{key}: {_plain(ours)} but the code cache has {_plain(theirs)}"
        for key, (ours, theirs) in facts.items()
        if _plain(ours) != _plain(theirs)
    ]
    if mismatches:
        raise ValueError(
            f"the {stage}'s latent facts differ from the code cache's manifest (code_spec): " + "; ".join(mismatches)
            + f". Set these values in the {stage.replace(' ', '_')} YAML (or on the command line) to the cache's."
        )
