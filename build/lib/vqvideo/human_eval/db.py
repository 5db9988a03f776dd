"""The study's SQLite database: which pair was offered to which rater (with its side), and every judgment.

One database belongs to one pair set (its `pair_set_id` and system names are stored in `meta`, so the report
needs only the database). WAL journal with `synchronous=FULL`; every write is one `BEGIN IMMEDIATE`
transaction committed before the HTTP reply, so a server killed with `kill -9` loses nothing it answered.
A judgment is accepted only for a pair offered to that rater and only once; a refused one stores nothing.
"""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from vqvideo.human_eval.blinding import left_system, rater_order
from vqvideo.human_eval.pairs import PairSet

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS offers (
  rater TEXT NOT NULL, pair_id TEXT NOT NULL, position INTEGER NOT NULL,
  left_system TEXT NOT NULL CHECK (left_system IN ('a', 'b')), offered_at TEXT NOT NULL,
  PRIMARY KEY (rater, pair_id));
CREATE TABLE IF NOT EXISTS judgments (
  id INTEGER PRIMARY KEY AUTOINCREMENT, rater TEXT NOT NULL, pair_id TEXT NOT NULL,
  choice TEXT NOT NULL CHECK (choice IN ('left', 'right', 'same')),
  left_system TEXT NOT NULL CHECK (left_system IN ('a', 'b')),
  preferred TEXT NOT NULL CHECK (preferred IN ('a', 'b', 'same')), judged_at TEXT NOT NULL,
  UNIQUE (rater, pair_id), FOREIGN KEY (rater, pair_id) REFERENCES offers (rater, pair_id));
"""
RATER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}")
CHOICES = ("left", "right", "same")


class StudyError(Exception):
    """A request the study refuses; `status` is the HTTP status, the message says why and what to do."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Offer:
    """The pair a rater should judge next; `index` is 1-based ("index of total"), `position` 0-based."""

    pair_id: str
    left_system: str
    position: int
    index: int
    total: int


@dataclass(frozen=True)
class Judgment:
    rater: str
    pair_id: str
    choice: str  # what the rater clicked: left, right or same
    left_system: str  # a or b: the system that was on the left for this rater and pair
    preferred: str  # a, b or same: the choice mapped back to the systems
    judged_at: str


@dataclass(frozen=True)
class Study:
    """Everything the report needs, read from one database."""

    db_path: Path
    pair_set_id: str
    names: tuple[str, str]
    pair_ids: list[str]
    judgments: list[Judgment]


def check_rater(rater: str) -> str:
    if not isinstance(rater, str) or not RATER_PATTERN.fullmatch(rater):
        raise StudyError(422, f"rater {rater!r}: use 1-64 letters, digits or _.@+- (starting with a letter or "
                              "digit), e.g. ?rater=alice")
    return rater


def preferred_system(choice: str, left: str) -> str:
    """Map a click back to the systems: left -> the left system, right -> the other one, same -> same."""
    if choice == "same":
        return "same"
    return left if choice == "left" else ("b" if left == "a" else "a")


def connect(db_path: Path) -> sqlite3.Connection:
    """Autocommit connection (transactions are explicit); waits for a writer instead of failing."""
    connection = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


@contextmanager
def transaction(db_path: Path) -> Iterator[sqlite3.Connection]:
    """One write transaction, committed (durably) on exit or rolled back on any error."""
    connection = connect(db_path)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield connection
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class JudgmentStore:
    """Offers and judgments of one pair set in the SQLite file `db_path` (created on first use)."""

    def __init__(self, db_path: str | Path, pair_set: PairSet):
        self.db_path, self.pair_set = Path(db_path), pair_set
        self.pair_ids = [pair.pair_id for pair in pair_set.pairs]
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = connect(self.db_path)
            try:
                tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if tables and "meta" not in tables:
                    raise sqlite3.DatabaseError(f"it holds other tables: {sorted(tables)}")
                connection.execute("PRAGMA journal_mode=WAL")
                connection.executescript(SCHEMA)
            finally:
                connection.close()
        except sqlite3.DatabaseError as err:
            raise ValueError(f"--db {self.db_path}: not a human-eval study database ({err}); pass a new file "
                             "name to start a study, or the file an earlier `serve` wrote") from err
        self._bind_meta()

    def _bind_meta(self) -> None:
        meta = {"pair_set_id": self.pair_set.pair_set_id, "name_a": self.pair_set.names[0],
                "name_b": self.pair_set.names[1], "pair_ids": json.dumps(self.pair_ids),
                "pairs_dir": str(self.pair_set.root.resolve()), "created_at": _now()}
        with transaction(self.db_path) as connection:
            row = connection.execute("SELECT value FROM meta WHERE key = 'pair_set_id'").fetchone()
            if row is None:
                connection.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
            elif row[0] != self.pair_set.pair_set_id:
                raise ValueError(f"{self.db_path} holds judgments of pair set {row[0]}, but {self.pair_set.root} "
                                 f"is pair set {self.pair_set.pair_set_id}; pass a new --db for a new pair set")

    def next_offer(self, rater: str) -> Offer | None:
        """The first pair in this rater's order that they have not judged, recorded as offered; None when done."""
        check_rater(rater)
        with transaction(self.db_path) as connection:
            judged = {row[0] for row in connection.execute("SELECT pair_id FROM judgments WHERE rater = ?", (rater,))}
            order = rater_order(self.pair_set.pair_set_id, rater, self.pair_ids)
            position = next((k for k, pair_id in enumerate(order) if pair_id not in judged), None)
            if position is None:
                return None
            pair_id = order[position]
            connection.execute(
                "INSERT OR IGNORE INTO offers (rater, pair_id, position, left_system, offered_at) VALUES (?, ?, ?, ?, ?)",
                (rater, pair_id, position, left_system(self.pair_set.pair_set_id, rater, pair_id), _now()))
            (left,) = connection.execute("SELECT left_system FROM offers WHERE rater = ? AND pair_id = ?",
                                         (rater, pair_id)).fetchone()
        return Offer(pair_id, left, position, len(judged) + 1, len(order))

    def record(self, rater: str, pair_id: str, choice: str) -> int:
        """Store one judgment (refusals raise StudyError and store nothing); returns the rater's judged count."""
        check_rater(rater)
        if choice not in CHOICES:
            raise StudyError(422, f"choice {choice!r}: must be one of {list(CHOICES)}")
        if self.pair_set.pair(pair_id) is None:
            raise StudyError(404, f"pair_id {pair_id!r} is not in this pair set")
        with transaction(self.db_path) as connection:
            offer = connection.execute("SELECT left_system FROM offers WHERE rater = ? AND pair_id = ?",
                                       (rater, pair_id)).fetchone()
            if offer is None:
                raise StudyError(409, f"pair {pair_id!r} has not been offered to rater {rater!r}; "
                                      f"GET /api/next?rater={rater} first")
            try:
                connection.execute(
                    "INSERT INTO judgments (rater, pair_id, choice, left_system, preferred, judged_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (rater, pair_id, choice, offer[0], preferred_system(choice, offer[0]), _now()))
            except sqlite3.IntegrityError:
                raise StudyError(409, f"rater {rater!r} has already judged pair {pair_id!r}; a judgment is final")
            (count,) = connection.execute("SELECT COUNT(*) FROM judgments WHERE rater = ?", (rater,)).fetchone()
        return count


def read_study(db_path: str | Path) -> Study:
    """The pair set facts and all judgments of a study database (never creates one)."""
    db_path = Path(db_path)
    if not db_path.is_file():
        raise ValueError(f"{db_path}: no such database; pass the --db file that `vqvideo human-eval serve` wrote")
    try:
        connection = connect(db_path)
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{db_path}: not a human-eval study database ({err})") from err
    try:
        meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
        rows = connection.execute("SELECT rater, pair_id, choice, left_system, preferred, judged_at FROM judgments "
                                  "ORDER BY id").fetchall()
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{db_path}: not a human-eval study database ({err})") from err
    finally:
        connection.close()
    if "pair_set_id" not in meta:
        raise ValueError(f"{db_path}: not a human-eval study database (no pair set recorded)")
    return Study(db_path, meta["pair_set_id"], (meta["name_a"], meta["name_b"]), json.loads(meta["pair_ids"]),
                 [Judgment(*row) for row in rows])
