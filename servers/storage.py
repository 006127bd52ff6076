"""Durable server state: accepted submissions, used nonces, and MPC round state (sqlite).

sqlite with `synchronous=FULL` and WAL: a transaction that returned is on disk, so a server
killed at any point restarts with exactly the submissions it acknowledged. Every change is one
transaction (accepting a submission inserts the share payload and its nonce together, after
re-checking replay and duplicates inside the same write lock), so a crash never leaves half a
submission. A storage directory belongs to one (server, task): opening it for another refuses.

Rounds: the daemon records each MPC round it runs (kind, request, state, result). Rounds that
were `running` when the process died come back as `interrupted`; the coordinator sees that in
RoundStatus and restarts them (same request, new session) from the stored shares. A round's
engine can also keep per-session blobs here (`put_data`/`get_data`), e.g. its share of the joint
randomness, so a resumed attempt does not need to redo work that is safe to reuse.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omniplus.core.errors import InputError, OmniplusError

SCHEMA_VERSION = 3  # 2: model_version per submission, opened_batches; 3: point_shares per submission
DB_NAME = "server.sqlite3"

SUBMISSION_STATES = ("accepted", "valid", "invalid", "batched", "paid")
ROUND_STATES = ("running", "done", "failed", "aborted", "interrupted")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS submissions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    do_address BLOB NOT NULL UNIQUE,
    payee BLOB NOT NULL,
    server_index INTEGER NOT NULL,
    n_servers INTEGER NOT NULL,
    threshold INTEGER NOT NULL,
    wires BLOB NOT NULL,            -- u32 little-endian per wire
    shares BLOB NOT NULL,           -- 32-byte little-endian field elements
    payload_hash BLOB NOT NULL,
    nonce BLOB NOT NULL,
    expiry INTEGER NOT NULL,
    signature BLOB NOT NULL,
    received_at REAL NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    batch_index INTEGER NOT NULL DEFAULT -1,
    batch_tx TEXT NOT NULL DEFAULT '',
    model_version INTEGER NOT NULL DEFAULT 0,
    point_shares BLOB NOT NULL DEFAULT x''  -- this server's point shares (prover/mpc/point_shares.py)
);
-- The aggregates this server agreed to open (servers/batch_policy.py): one DO set per batch index,
-- written before anything is opened, so a restart cannot be talked into another set.
CREATE TABLE IF NOT EXISTS opened_batches (
    batch_index INTEGER PRIMARY KEY,
    dos BLOB NOT NULL,              -- 20 bytes per DO, slot order
    opened_at REAL NOT NULL,
    kept BLOB,                      -- the DOs whose aggregate is opened (after the re-check and
                                    -- screening), pinned before the opening; NULL until then
    decision TEXT NOT NULL DEFAULT '',  -- JSON of that re-check and screening, for retries
    failures INTEGER NOT NULL DEFAULT 0  -- attempts whose proof failed this server's verification
);
CREATE TABLE IF NOT EXISTS opened_dos (
    do_address BLOB PRIMARY KEY,
    batch_index INTEGER NOT NULL
);
-- Status request nonces (signed by the DO, used once within STATUS_WINDOW; kept across restarts)
CREATE TABLE IF NOT EXISTS status_nonces (
    do_address BLOB NOT NULL,
    nonce BLOB NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (do_address, nonce)
);
CREATE TABLE IF NOT EXISTS nonces (
    do_address BLOB NOT NULL,
    nonce BLOB NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (do_address, nonce)
);
CREATE TABLE IF NOT EXISTS rounds (
    session TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    request BLOB NOT NULL,
    result BLOB NOT NULL DEFAULT x'',
    error TEXT NOT NULL DEFAULT '',
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS resubmissions (
    do_address BLOB PRIMARY KEY,
    count INTEGER NOT NULL,
    last_reason TEXT NOT NULL,
    last_payload_hash BLOB NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS change_counter (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
INSERT OR IGNORE INTO change_counter (id, n) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS round_data (
    session TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (session, key)
);
"""


class StorageError(OmniplusError):
    """The state directory is unusable (belongs to another server/task, corrupt, unwritable)."""


class Rejected(InputError):
    """A submission that must not be stored; `code` is the gRPC status name the daemon returns."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class AlreadyStored(Rejected):
    """An identical resend (same nonce, payload and signature) of a stored submission: the DO's
    first reply was lost, so the daemon answers it as a success."""

    def __init__(self, message: str) -> None:
        super().__init__("OK", message)


@dataclass(frozen=True)
class StoredSubmission:
    seq: int
    do_address: bytes
    payee: bytes
    server_index: int
    n_servers: int
    threshold: int
    wires: list[int]
    shares: bytes  # 32 bytes per wire, little-endian canonical; decode with share_values()
    payload_hash: bytes
    nonce: bytes
    expiry: int
    signature: bytes
    received_at: float
    state: str
    reason: str
    batch_index: int
    batch_tx: str
    model_version: int = 0
    point_shares: bytes = b""  # this server's point shares, b"" if the DO sent none

    def share_values(self) -> list[int]:
        """This server's shares as ints, in wire order (validated canonical on the way in)."""
        s = self.shares
        return [int.from_bytes(s[i : i + 32], "little") for i in range(0, len(s), 32)]

    def block(self) -> dict[int, int]:
        """wire index -> this server's share, the shape prover/witness.py do_block uses."""
        return dict(zip(self.wires, self.share_values(), strict=True))


@dataclass(frozen=True)
class RoundRecord:
    session: str
    kind: str
    state: str
    request: bytes
    result: bytes
    error: str
    started_at: float
    updated_at: float


def pack_wires(wires: Sequence[int]) -> bytes:
    return b"".join(int(w).to_bytes(4, "little") for w in wires)


def unpack_wires(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4)]


class Storage:
    """One sqlite database per server state directory; safe to share across gRPC worker threads."""

    def __init__(self, directory: str | Path, identity: dict[str, Any] | None = None) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lockfile = _lock_dir(self.dir)
        try:
            self._open(identity)
        except BaseException:
            self._lockfile.close()
            self._lockfile = None
            raise

    def _open(self, identity: dict[str, Any] | None) -> None:
        self.path = self.dir / DB_NAME
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot open state database {self.path}: {exc}") from None
        self._migrate()
        self._bind(identity or {})
        self.epoch = self._epoch()
        self.interrupted = self._mark_interrupted()

    # ---------------------------------------------------------------- plumbing

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._lockfile is not None:
                self._lockfile.close()  # releases the flock
                self._lockfile = None

    def _tx(self) -> _Tx:
        return _Tx(self)

    def _bind(self, identity: dict[str, Any]) -> None:
        """Tie the directory to one server and task so a misconfigured restart cannot mix states."""
        want = {"schema": str(SCHEMA_VERSION), **{k: str(v) for k, v in identity.items()}}
        with self._tx() as db:
            have = dict(db.execute("SELECT key, value FROM meta").fetchall())
            for k, v in want.items():
                if k in have and have[k] != v:
                    raise StorageError(
                        f"state directory {self.dir} belongs to {k}={have[k]!r}, not {v!r}; "
                        "use a fresh storage directory per server and task"
                    )
            db.executemany("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", list(want.items()))

    def _migrate(self) -> None:
        """Add what later versions need to an existing database: the change number of every
        submission, kept by triggers so every code path that changes a submission bumps it."""
        with self._tx() as db:
            cols = {r[1] for r in db.execute("PRAGMA table_info(submissions)").fetchall()}
            if "change_no" not in cols:
                db.execute("ALTER TABLE submissions ADD COLUMN change_no INTEGER NOT NULL DEFAULT 0")
            db.execute("CREATE INDEX IF NOT EXISTS submissions_change ON submissions(change_no)")
            if "score" not in cols:  # contribution screening (prover/mpc/screening.py): '' = not scored
                db.execute("ALTER TABLE submissions ADD COLUMN score TEXT NOT NULL DEFAULT ''")
            ob = {r[1] for r in db.execute("PRAGMA table_info(opened_batches)").fetchall()}
            for col, decl in (("kept", "BLOB"), ("decision", "TEXT NOT NULL DEFAULT ''"),
                              ("failures", "INTEGER NOT NULL DEFAULT 0")):
                if col not in ob:  # pinned kept sets and failed proofs (a failed batch is given up)
                    db.execute(f"ALTER TABLE opened_batches ADD COLUMN {col} {decl}")
            for name, when in (("sub_changed_ins", "AFTER INSERT ON submissions"),
                               ("sub_changed_upd", "AFTER UPDATE OF state, reason, batch_index, batch_tx, "
                                                   "payload_hash ON submissions")):
                db.execute(
                    f"CREATE TRIGGER IF NOT EXISTS {name} {when} BEGIN "
                    "UPDATE change_counter SET n = n + 1 WHERE id = 1; "
                    "UPDATE submissions SET change_no = (SELECT n FROM change_counter WHERE id = 1) "
                    "WHERE seq = NEW.seq; END"
                )

    def _epoch(self) -> str:
        import secrets

        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('epoch', ?)", (secrets.token_hex(8),))
            return str(db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0])

    def changes(self, since: int, limit: int) -> tuple[list[dict[str, Any]], int, bool]:
        """Submissions changed after change number `since`, oldest first, without their shares:
        ([{do_address, state, reason, batch_index, change, model_version}], cursor, more)."""
        with self._lock:
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(submissions)").fetchall()}
            mv = "model_version" if "model_version" in cols else "0"
            rows = self._db.execute(
                f"SELECT do_address, state, reason, batch_index, change_no, {mv} FROM submissions "
                "WHERE change_no > ? ORDER BY change_no LIMIT ?",
                (since, limit + 1),
            ).fetchall()
        more = len(rows) > limit
        out = [
            {"do_address": bytes(r[0]), "state": r[1], "reason": r[2], "batch_index": int(r[3]),
             "change": int(r[4]), "model_version": int(r[5] or 0)}
            for r in rows[:limit]
        ]
        cursor = out[-1]["change"] if out else since
        return out, cursor, more

    def _mark_interrupted(self) -> list[str]:
        with self._tx() as db:
            rows = db.execute("SELECT session FROM rounds WHERE state = 'running'").fetchall()
            db.execute(
                "UPDATE rounds SET state = 'interrupted', error = 'server restarted mid-round', "
                "updated_at = ? WHERE state = 'running'",
                (time.time(),),
            )
        return [r[0] for r in rows]

    # ---------------------------------------------------------------- submissions

    def accept_submission(
        self,
        *,
        do_address: bytes,
        payee: bytes,
        server_index: int,
        n_servers: int,
        threshold: int,
        wires: Sequence[int],
        shares: bytes,
        payload_hash: bytes,
        nonce: bytes,
        expiry: int,
        signature: bytes,
        model_version: int = 0,
        point_shares: bytes = b"",
    ) -> StoredSubmission:
        """Store one submission and its nonce atomically; Rejected (ALREADY_EXISTS) on replay/duplicate."""
        now = time.time()
        with self._tx() as db:
            same = db.execute(
                "SELECT seq FROM submissions WHERE do_address = ? AND nonce = ? AND payload_hash = ? "
                "AND signature = ?", (do_address, nonce, payload_hash, signature)
            ).fetchone()
            if same is not None:
                raise AlreadyStored("already stored: this exact submission was accepted before")
            if db.execute(
                "SELECT 1 FROM nonces WHERE do_address = ? AND nonce = ?", (do_address, nonce)
            ).fetchone():
                raise Rejected(
                    "ALREADY_EXISTS", "replayed submission: this nonce was already used by this DO"
                )
            row = db.execute(
                "SELECT payload_hash, state, reason FROM submissions WHERE do_address = ?", (do_address,)
            ).fetchone()
            if row is not None:
                self._replace_rejected(db, do_address, row, payload_hash, now)
            db.execute(
                "INSERT INTO submissions (do_address, payee, server_index, n_servers, threshold, wires, "
                "shares, payload_hash, nonce, expiry, signature, received_at, state, model_version, "
                "point_shares) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'accepted', ?, ?)",
                (
                    do_address,
                    payee,
                    server_index,
                    n_servers,
                    threshold,
                    pack_wires(wires),
                    shares,
                    payload_hash,
                    nonce,
                    expiry,
                    signature,
                    now,
                    int(model_version),
                    point_shares,
                ),
            )
            db.execute(
                "INSERT INTO nonces (do_address, nonce, seen_at) VALUES (?, ?, ?)", (do_address, nonce, now)
            )
        got = self.submission(do_address)
        assert got is not None
        return got

    def _replace_rejected(self, db: sqlite3.Connection, do_address: bytes, row: Sequence[Any],
                          payload_hash: bytes, now: float) -> None:
        """A DO already has a submission: refuse, unless it was rejected for a reason that could be
        a server's fault (servers/verdicts.py) and it has resubmissions left; then the rejected
        row goes (its nonce stays used) and the caller inserts the fresh one, in the same transaction."""
        from omniplus.servers.verdicts import MAX_RESUBMISSIONS, may_resubmit

        old_hash, state, reason = bytes(row[0]), row[1], row[2]
        if state != "invalid":
            raise Rejected(
                "ALREADY_EXISTS",
                "duplicate submission: this DO already has an accepted update for this task"
                + (" (same payload)" if old_hash == payload_hash else " (a different payload)"),
            )
        if not may_resubmit(reason):
            raise Rejected("ALREADY_EXISTS", f"this DO's update was rejected for its own provable fault ({reason}); "
                                             "it may not resubmit")
        done = db.execute("SELECT count FROM resubmissions WHERE do_address = ?", (do_address,)).fetchone()
        count = int(done[0]) if done else 0
        if count >= MAX_RESUBMISSIONS:
            raise Rejected("ALREADY_EXISTS", f"rejected ({reason}) and already resubmitted {count} time(s), "
                                             f"the most allowed")
        if old_hash == payload_hash:
            raise Rejected("ALREADY_EXISTS",
                           "a resubmission must carry fresh shares (same payload as the rejected one)")
        db.execute("DELETE FROM submissions WHERE do_address = ?", (do_address,))
        db.execute("INSERT OR REPLACE INTO resubmissions (do_address, count, last_reason, last_payload_hash, at) "
                   "VALUES (?, ?, ?, ?, ?)", (do_address, count + 1, reason, old_hash, now))

    def resubmissions(self, do_address: bytes) -> int:
        with self._lock:
            row = self._db.execute("SELECT count FROM resubmissions WHERE do_address = ?", (do_address,)).fetchone()
        return int(row[0]) if row else 0

    def submission(self, do_address: bytes) -> StoredSubmission | None:
        with self._lock:
            row = self._db.execute(_SELECT_SUB + " WHERE do_address = ?", (do_address,)).fetchone()
        return _sub(row) if row else None

    def submissions(
        self, state: str | None = None, dos: Iterable[bytes] | None = None
    ) -> list[StoredSubmission]:
        """Submissions in arrival order, optionally filtered by state and/or DO addresses."""
        with self._lock:
            if state is None:
                rows = self._db.execute(_SELECT_SUB + " ORDER BY seq").fetchall()
            else:
                rows = self._db.execute(_SELECT_SUB + " WHERE state = ? ORDER BY seq", (state,)).fetchall()
        subs = [_sub(r) for r in rows]
        if dos is not None:
            want = list(dos)
            by = {s.do_address: s for s in subs}
            return [by[d] for d in want if d in by]
        return subs

    def count_submissions(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM submissions").fetchone()[0])

    def nonce_used(self, do_address: bytes, nonce: bytes) -> bool:
        with self._lock:
            return bool(
                self._db.execute(
                    "SELECT 1 FROM nonces WHERE do_address = ? AND nonce = ?", (do_address, nonce)
                ).fetchone()
            )

    def set_verdicts(self, verdicts: dict[bytes, tuple[bool, str]]) -> None:
        """Record validation outcomes (valid, reason) for many DOs in one transaction."""
        with self._tx() as db:
            for do, (ok, reason) in verdicts.items():
                db.execute(
                    "UPDATE submissions SET state = ?, reason = ? WHERE do_address = ? AND state IN "
                    "('accepted', 'valid', 'invalid')",
                    ("valid" if ok else "invalid", reason, do),
                )

    def mark_batched(self, dos: Sequence[bytes], batch_index: int, batch_tx: str = "") -> None:
        """A proven batch's DOs; also ends any run of given-up batches (given_up_run)."""
        with self._tx() as db:
            db.execute("DELETE FROM meta WHERE key = 'given_up_run'")
            for do in dos:
                db.execute(
                    "UPDATE submissions SET state = 'batched', batch_index = ?, batch_tx = ? "
                    "WHERE do_address = ?",
                    (batch_index, batch_tx, do),
                )

    def set_screened(self, dropped: dict[bytes, tuple[int, str]], kept: dict[bytes, int]) -> None:
        """Record a batch's contribution screening in one transaction: dropped DOs become invalid
        with their score and reason (final: never batched again in this task), kept DOs get the
        score they were batched with."""
        with self._tx() as db:
            for do, (score, reason) in dropped.items():
                db.execute("UPDATE submissions SET state = 'invalid', reason = ?, score = ? WHERE do_address = ? "
                           "AND state IN ('valid', 'invalid')", (reason, str(int(score)), do))
            for do, score in kept.items():
                db.execute("UPDATE submissions SET score = ? WHERE do_address = ?", (str(int(score)), do))

    def score(self, do_address: bytes) -> int | None:
        """The DO's contribution score from the last screening that included it, or None."""
        with self._lock:
            row = self._db.execute("SELECT score FROM submissions WHERE do_address = ?", (do_address,)).fetchone()
        return int(row[0]) if row and row[0] != "" else None

    # ---------------------------------------------------------------- rounds

    def release_opened_batch(self, batch_index: int, dos: Sequence[bytes]) -> bool:
        """Undo the agreement to open `dos` at `batch_index` when screening left fewer than N_min
        and nothing was opened (only scores were): the index is free for another set. The dropped
        DOs are invalid by then, so no set can include them again. False if the index holds
        another set (nothing changed)."""
        dos = [bytes(d) for d in dos]
        with self._tx() as db:
            row = db.execute("SELECT dos FROM opened_batches WHERE batch_index = ?", (batch_index,)).fetchone()
            if row is None or bytes(row[0]) != b"".join(dos):
                return False
            db.execute("DELETE FROM opened_batches WHERE batch_index = ?", (batch_index,))
            db.execute("DELETE FROM opened_dos WHERE batch_index = ?", (batch_index,))
        return True

    def pin_kept(self, batch_index: int, kept: Sequence[bytes], decision: str,
                 dropped: dict[bytes, tuple[int | None, str]]) -> None:
        """Fix, before anything is opened, which DOs of the agreed set at `batch_index` enter its
        aggregate, in one transaction: `kept` (slot order), the JSON `decision` that chose them (the
        re-check and the screening, replayed to the coordinator on a retry), and the verdicts of the
        DOs left out (`dropped`: score or None, reason). Left-out DOs are removed from opened_dos, so
        a DO the re-check rejected may resubmit and be batched later. Every retry at this index then
        opens the same aggregate: no two attempts ever open aggregates of different sets."""
        kept = [bytes(d) for d in kept]
        with self._tx() as db:
            row = db.execute("SELECT dos, kept FROM opened_batches WHERE batch_index = ?", (batch_index,)).fetchone()
            if row is None:
                raise Rejected("FAILED_PRECONDITION", f"batch {batch_index} was not agreed; nothing to pin")
            members = set(_addresses(row[0]))
            if not set(kept) <= members:
                raise Rejected("FAILED_PRECONDITION", f"batch {batch_index}: kept DOs outside the agreed set")
            if row[1] is not None:
                if bytes(row[1]) != b"".join(kept):
                    raise Rejected("FAILED_PRECONDITION", f"batch {batch_index} is pinned to another kept set")
                return
            db.execute("UPDATE opened_batches SET kept = ?, decision = ? WHERE batch_index = ?",
                       (b"".join(kept), decision, batch_index))
            for do, (score, reason) in dropped.items():
                db.execute("UPDATE submissions SET state = 'invalid', reason = ?, score = ? WHERE do_address = ? "
                           "AND state IN ('valid', 'invalid')",
                           (reason, "" if score is None else str(int(score)), bytes(do)))
            for do in members - set(kept):
                db.execute("DELETE FROM opened_dos WHERE do_address = ? AND batch_index = ?", (do, batch_index))

    def pinned(self, batch_index: int) -> tuple[list[bytes], str] | None:
        """(kept DOs in slot order, decision JSON) pinned at `batch_index`, or None."""
        with self._lock:
            row = self._db.execute("SELECT kept, decision FROM opened_batches WHERE batch_index = ?",
                                   (batch_index,)).fetchone()
        if row is None or row[0] is None:
            return None
        return _addresses(row[0]), str(row[1])

    def note_failed_proof(self, batch_index: int) -> int:
        """Count one attempt at `batch_index` whose joint proof failed this server's verification."""
        with self._tx() as db:
            db.execute("UPDATE opened_batches SET failures = failures + 1 WHERE batch_index = ?", (batch_index,))
            row = db.execute("SELECT failures FROM opened_batches WHERE batch_index = ?", (batch_index,)).fetchone()
        return int(row[0]) if row else 0

    def burn_batch(self, batch_index: int, reason: str) -> list[bytes]:
        """Give up the batch at `batch_index` after repeated failed proofs, in one transaction: its
        kept DOs (their aggregate was opened) become invalid with `reason` (final: never batched
        again, so no DO is in two opened aggregates) and stay recorded as opened (opened_dos at
        index -1 - batch_index); the index is free for a set disjoint from every opened one."""
        with self._tx() as db:
            row = db.execute("SELECT dos, kept FROM opened_batches WHERE batch_index = ?", (batch_index,)).fetchone()
            if row is None:
                return []
            burned = _addresses(row[1] if row[1] is not None else row[0])
            for do in burned:
                db.execute("UPDATE submissions SET state = 'invalid', reason = ? WHERE do_address = ?", (reason, do))
                db.execute("UPDATE opened_dos SET batch_index = ? WHERE do_address = ?", (-1 - batch_index, do))
            db.execute("DELETE FROM opened_dos WHERE batch_index = ?", (batch_index,))
            db.execute("DELETE FROM opened_batches WHERE batch_index = ?", (batch_index,))
            db.execute("INSERT INTO meta(key, value) VALUES ('given_up_run', '1') ON CONFLICT(key) "
                       "DO UPDATE SET value = CAST(value AS INTEGER) + 1")
        return burned

    def given_up_run(self) -> int:
        """Batches given up since this server last proved one (batch_policy.MAX_GIVEN_UP_IN_A_ROW)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'given_up_run'").fetchone()
        return int(row[0]) if row else 0

    def use_status_nonce(self, do_address: bytes, nonce: bytes, window: float) -> bool:
        """Record a Status request's nonce; False if it was used before. Nonces older than
        `window` are forgotten (an older request is refused by its timestamp anyway)."""
        now = time.time()
        with self._tx() as db:
            db.execute("DELETE FROM status_nonces WHERE seen_at < ?", (now - window,))
            if db.execute("SELECT 1 FROM status_nonces WHERE do_address = ? AND nonce = ?",
                          (do_address, nonce)).fetchone():
                return False
            db.execute("INSERT INTO status_nonces (do_address, nonce, seen_at) VALUES (?, ?, ?)",
                       (do_address, nonce, now))
        return True

    def opened_batch(self, batch_index: int) -> list[bytes] | None:
        """The DO set this server agreed to open at `batch_index` (slot order), or None."""
        with self._lock:
            row = self._db.execute("SELECT dos FROM opened_batches WHERE batch_index = ?", (batch_index,)).fetchone()
        if row is None:
            return None
        return _addresses(row[0])

    def opened_batches(self) -> dict[int, list[bytes]]:
        with self._lock:
            rows = self._db.execute("SELECT batch_index FROM opened_batches ORDER BY batch_index").fetchall()
        return {int(r[0]): self.opened_batch(int(r[0])) or [] for r in rows}

    def record_opened_batch(self, batch_index: int, dos: Sequence[bytes]) -> bool:
        """Durably agree to open `dos` at `batch_index`, in one transaction, before any opening.

        True if newly recorded, False if this exact set was already agreed there (a retry).
        Rejected (FAILED_PRECONDITION) if the index holds another set, or a DO is already in the
        aggregate of another index: no DO is ever in two opened aggregates of this task."""
        dos = [bytes(d) for d in dos]
        with self._tx() as db:
            row = db.execute("SELECT dos FROM opened_batches WHERE batch_index = ?", (batch_index,)).fetchone()
            if row is not None:
                if bytes(row[0]) != b"".join(dos):
                    raise Rejected("FAILED_PRECONDITION",
                                   f"batch {batch_index} was already opened for another DO set; a retry must "
                                   "repeat the identical set")
                return False
            for d in dos:
                other = db.execute("SELECT batch_index FROM opened_dos WHERE do_address = ?", (d,)).fetchone()
                if other is not None:
                    at = int(other[0])
                    raise Rejected("FAILED_PRECONDITION", f"DO 0x{d.hex()} is already in the opened aggregate of "
                                   + (f"batch {at}" if at >= 0 else f"the given-up batch {-1 - at}"))
            db.execute("INSERT INTO opened_batches (batch_index, dos, opened_at) VALUES (?, ?, ?)",
                       (batch_index, b"".join(dos), time.time()))
            for d in dos:
                db.execute("INSERT INTO opened_dos (do_address, batch_index) VALUES (?, ?)", (d, batch_index))
        return True

    def begin_round(self, session: str, kind: str, request: bytes) -> RoundRecord:
        """Record a new running round; a session id is used once (StorageError if it exists)."""
        now = time.time()
        with self._tx() as db:
            if db.execute("SELECT 1 FROM rounds WHERE session = ?", (session,)).fetchone():
                raise Rejected("ALREADY_EXISTS", f"session {session!r} already exists; start a new session")
            db.execute(
                "INSERT INTO rounds (session, kind, state, request, started_at, updated_at) "
                "VALUES (?, ?, 'running', ?, ?, ?)",
                (session, kind, request, now, now),
            )
        rec = self.round(session)
        assert rec is not None
        return rec

    def finish_round(self, session: str, state: str, result: bytes = b"", error: str = "") -> None:
        if state not in ROUND_STATES:
            raise ValueError(f"bad round state {state!r}")
        with self._tx() as db:
            db.execute(
                "UPDATE rounds SET state = ?, result = ?, error = ?, updated_at = ? WHERE session = ?",
                (state, result, error, time.time(), session),
            )

    def round(self, session: str) -> RoundRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT session, kind, state, request, result, error, started_at, updated_at "
                "FROM rounds WHERE session = ?",
                (session,),
            ).fetchone()
        return RoundRecord(*row) if row else None

    def rounds(self, state: str | None = None) -> list[RoundRecord]:
        q = "SELECT session, kind, state, request, result, error, started_at, updated_at FROM rounds"
        with self._lock:
            rows = (
                self._db.execute(q + " WHERE state = ? ORDER BY started_at", (state,)).fetchall()
                if state
                else self._db.execute(q + " ORDER BY started_at").fetchall()
            )
        return [RoundRecord(*r) for r in rows]

    def put_data(self, session: str, key: str, value: bytes) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO round_data (session, key, value) VALUES (?, ?, ?)",
                (session, key, value),
            )

    def get_data(self, session: str, key: str) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM round_data WHERE session = ? AND key = ?", (session, key)
            ).fetchone()
        return bytes(row[0]) if row else None

    def summary(self) -> dict[str, Any]:
        """Counts for logs and status."""
        with self._lock:
            subs = dict(self._db.execute("SELECT state, COUNT(*) FROM submissions GROUP BY state").fetchall())
            rounds = dict(self._db.execute("SELECT state, COUNT(*) FROM rounds GROUP BY state").fetchall())
        return {"submissions": subs, "rounds": rounds}


def _lock_dir(directory: Path):  # type: ignore[no-untyped-def]
    """An exclusive flock on DIR/lock for the life of the process: a second daemon on the same
    state directory fails at once instead of sharing its database (gRPC would let both bind)."""
    import fcntl
    import os

    fh = open(directory / "lock", "a+")  # noqa: SIM115 - held until close()
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise StorageError(
            f"state directory {directory} is in use by {holder}: one daemon per state directory"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}\n")
    fh.flush()
    return fh


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT under the storage lock; ROLLBACK on any exception."""

    def __init__(self, st: Storage) -> None:
        self.st = st

    def __enter__(self) -> sqlite3.Connection:
        self.st._lock.acquire()
        try:
            self.st._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.st._lock.release()
            raise
        return self.st._db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self.st._db.execute("COMMIT")
            else:
                self.st._db.execute("ROLLBACK")
        finally:
            self.st._lock.release()


_SELECT_SUB = (
    "SELECT seq, do_address, payee, server_index, n_servers, threshold, wires, shares, payload_hash, nonce, "
    "expiry, signature, received_at, state, reason, batch_index, batch_tx, model_version, point_shares "
    "FROM submissions"
)


def _addresses(raw: bytes) -> list[bytes]:
    """A DO set stored as 20 bytes per address (opened_batches.dos / kept), in slot order."""
    raw = bytes(raw)
    return [raw[i : i + 20] for i in range(0, len(raw), 20)]


def _sub(row: Sequence[Any]) -> StoredSubmission:
    vals = list(row)
    vals[6] = unpack_wires(vals[6])
    for i in (1, 2, 7, 8, 9, 11, 18):
        vals[i] = bytes(vals[i])
    return StoredSubmission(*vals)


def dumps(obj: Any) -> bytes:
    """Canonical JSON bytes for round requests/results."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
