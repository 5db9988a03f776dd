"""What each rater sees, derived only from (pair set, rater, pair): the order of the pairs and which system is
on the left. No random state is stored or seeded at start-up, so a server restarted after `kill -9` shows every
rater the same order and sides as before; the database still records both with every offer and judgment, so
the report never has to recompute them.
"""

from __future__ import annotations

import hashlib
from typing import Literal

System = Literal["a", "b"]


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


def rater_order(pair_set_id: str, rater: str, pair_ids: list[str]) -> list[str]:
    """The pairs in the order this rater is offered them: a per-rater shuffle (sorting by a keyed hash)."""
    return sorted(pair_ids, key=lambda pair_id: _digest(pair_set_id, rater, "order", pair_id))


def left_system(pair_set_id: str, rater: str, pair_id: str) -> System:
    """Which system's video this rater sees on the left for this pair: a fair coin per (rater, pair)."""
    return "a" if _digest(pair_set_id, rater, "side", pair_id)[0] & 1 == 0 else "b"
