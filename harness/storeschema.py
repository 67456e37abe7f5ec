"""The run store's schema as numbered steps (harness/sqlite.Schema): the run, its calls and grades,
the length reference, and the review queue's tables."""

from __future__ import annotations

import sqlite3

from .postgres import columns
from .sqlite import Schema, statements

# Version 1: the tables as they were when schema versions began (2026-12-03); the review queue's
# tables (harness/review) are in the store's file too.
TABLES_V1 = """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, identity TEXT NOT NULL, suite TEXT NOT NULL, pool TEXT NOT NULL,
  heldout INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL, models TEXT NOT NULL,
  created REAL NOT NULL, updated REAL NOT NULL, config_file TEXT, identity_doc TEXT);
CREATE TABLE IF NOT EXISTS calls (
  run_id TEXT NOT NULL, model TEXT NOT NULL, item_id TEXT NOT NULL, epoch INTEGER NOT NULL,
  ok INTEGER NOT NULL, output BLOB, finish_reason TEXT, input_tokens INTEGER,
  output_tokens INTEGER, latency_s REAL, cost_usd REAL, attempts INTEGER, error_kind TEXT,
  error TEXT, finished REAL, item_sha TEXT, served TEXT,
  PRIMARY KEY (run_id, model, item_id, epoch)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS length_reference (
  pool TEXT NOT NULL, model TEXT NOT NULL, item_id TEXT NOT NULL, preference REAL NOT NULL,
  length_diff REAL NOT NULL);
CREATE INDEX IF NOT EXISTS length_reference_pool ON length_reference(pool);
CREATE TABLE IF NOT EXISTS length_reference_sources (
  pool TEXT PRIMARY KEY, run_id TEXT, grader TEXT, models TEXT, created REAL);
CREATE TABLE IF NOT EXISTS grades (
  run_id TEXT NOT NULL, grader TEXT NOT NULL, model TEXT NOT NULL, item_id TEXT NOT NULL,
  epoch INTEGER NOT NULL, status TEXT NOT NULL, score REAL, detail TEXT, grader_sha TEXT,
  PRIMARY KEY (run_id, grader, model, item_id, epoch)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reviewers (
  name TEXT PRIMARY KEY, token_hash TEXT, languages TEXT, country TEXT, age_band TEXT,
  education TEXT, created REAL, token_expires REAL);
CREATE TABLE IF NOT EXISTS review_sessions (
  session_hash TEXT PRIMARY KEY, reviewer TEXT, expires REAL);
CREATE TABLE IF NOT EXISTS assignments (
  id TEXT PRIMARY KEY, run_id TEXT, model TEXT, item_id TEXT, epoch INTEGER, reviewer TEXT,
  reason TEXT, gold TEXT, assigned REAL, opened REAL, done REAL, scores TEXT, flag TEXT,
  comment TEXT, baseline TEXT,
  UNIQUE (run_id, model, item_id, epoch, reviewer));
"""


# Columns added before versions began, which a store written then may lack: (table, column, type).
COLUMNS_BEFORE_V1 = (
    ("runs", "identity_doc", "TEXT"),
    ("calls", "item_sha", "TEXT"),
    ("grades", "grader_sha", "TEXT"),
    ("calls", "served", "TEXT"),
    ("reviewers", "token_expires", "REAL"),
)


def _tables_v1(db: sqlite3.Connection) -> None:
    for stmt in statements(TABLES_V1):
        db.execute(stmt)
    for table, column, kind in COLUMNS_BEFORE_V1:
        if column not in columns(db, table):
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


# Version 2: the maintainers' view (harness/view): maintainers, their sessions, and the log of
# views of held-out items (a chain of MACs under the vault's key).
TABLES_V2 = """
CREATE TABLE IF NOT EXISTS maintainers (
  name TEXT PRIMARY KEY, token_hash TEXT, token_expires REAL, created REAL);
CREATE TABLE IF NOT EXISTS maintainer_sessions (
  session_hash TEXT PRIMARY KEY, maintainer TEXT, expires REAL);
CREATE TABLE IF NOT EXISTS view_log (
  seq INTEGER PRIMARY KEY, at REAL NOT NULL, maintainer TEXT NOT NULL, run_id TEXT NOT NULL,
  item_id TEXT NOT NULL, prev TEXT NOT NULL, mac TEXT NOT NULL);
"""


def _tables_v2(db: sqlite3.Connection) -> None:
    for stmt in statements(TABLES_V2):
        db.execute(stmt)


# Version 3: the items each safeguard detector flagged, as `holdout check` last found them (the
# view filters by them; the check's JSON keeps a sample of 50 ids per detector); the grades in
# score order (the view's listing by score: a page is an index walk, not a sort of the run); and
# each run's count of changes.
TABLES_V3 = """
CREATE TABLE IF NOT EXISTS safeguard_flags (
  run_id TEXT NOT NULL, model TEXT NOT NULL, detector TEXT NOT NULL, item_id TEXT NOT NULL,
  checked REAL NOT NULL, PRIMARY KEY (run_id, detector, model, item_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS grades_by_score ON grades (run_id, grader, score);
"""


def _tables_v3(db: sqlite3.Connection) -> None:
    for stmt in statements(TABLES_V3):
        db.execute(stmt)
    # a count of the writes to a run's calls, grades and flags: what the view's figures are
    # kept against (one row to read, where the file's data_version moves with any login)
    if "changes" not in columns(db, "runs"):
        db.execute("ALTER TABLE runs ADD COLUMN changes INTEGER NOT NULL DEFAULT 0")


# Version 4: batches sent to a provider's Batch API (harness/storebatches.py): intent, provider
# ids, collection and the deletion of the provider's files, so a killed run resumes each.
TABLES_V4 = """
CREATE TABLE IF NOT EXISTS batches (
  submission TEXT PRIMARY KEY, run_id TEXT NOT NULL, provider TEXT NOT NULL, status TEXT NOT NULL,
  jobs TEXT NOT NULL, worst_usd REAL NOT NULL, created REAL NOT NULL, batch_id TEXT,
  input_file TEXT, files TEXT, deleted TEXT, outcome TEXT, resubmits TEXT);
CREATE INDEX IF NOT EXISTS batches_run ON batches (run_id, status);
"""


def _tables_v4(db: sqlite3.Connection) -> None:
    for stmt in statements(TABLES_V4):
        db.execute(stmt)


# Version 5: what workers on a shared store coordinate through: leases on jobs (workers.py),
# each key's send schedule (pgpace.py), and the budget they spend from (sharedbudget.py). A
# SQLite store has them too (one schema), unused.
TABLES_V5 = """
CREATE TABLE IF NOT EXISTS leases (
  run_id TEXT NOT NULL, model TEXT NOT NULL, item_id TEXT NOT NULL, epoch INTEGER NOT NULL,
  worker TEXT NOT NULL, until REAL NOT NULL, state TEXT NOT NULL, finished REAL,
  PRIMARY KEY (run_id, model, item_id, epoch)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS leases_held ON leases (run_id, state, worker);
CREATE TABLE IF NOT EXISTS key_lanes (
  lane TEXT PRIMARY KEY, next_at REAL NOT NULL, spacing REAL NOT NULL, reserved INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS run_spend (scope TEXT PRIMARY KEY, spent REAL NOT NULL);
CREATE TABLE IF NOT EXISTS budget_holds (
  scope TEXT NOT NULL, worker TEXT NOT NULL, held REAL NOT NULL, until REAL NOT NULL,
  PRIMARY KEY (scope, worker));
"""

# PostgreSQL has no json_extract or json_each of text; the view's filters use SQLite's. These
# give what they give there for numbers (what the filters compare); NULL for anything else.
PG_JSON_FUNCTIONS = (
    """CREATE OR REPLACE FUNCTION json_extract(doc TEXT, path TEXT) RETURNS DOUBLE PRECISION
    LANGUAGE sql IMMUTABLE AS $$
      SELECT CASE jsonb_typeof(v) WHEN 'number' THEN (v #>> '{}')::double precision
        WHEN 'boolean' THEN CASE WHEN v = 'true'::jsonb THEN 1 ELSE 0 END END
      FROM (SELECT doc::jsonb #> string_to_array(replace(substr(path, 3), '"', ''), '.') AS v) s
    $$""",
    """CREATE OR REPLACE FUNCTION json_each(doc TEXT)
    RETURNS TABLE (key TEXT, value DOUBLE PRECISION) LANGUAGE sql IMMUTABLE AS $$
      SELECT e.key, CASE jsonb_typeof(e.value) WHEN 'number'
        THEN (e.value #>> '{}')::double precision END FROM jsonb_each(doc::jsonb) e
    $$""",
)


def _tables_v5(db) -> None:
    for stmt in statements(TABLES_V5):
        db.execute(stmt)
    if getattr(db, "kind", "sqlite") == "postgresql":
        for stmt in PG_JSON_FUNCTIONS:
            db.execute(stmt)


# Version 6: the vault's files, on a shared store (vault/shared.py): what a copy of the vault
# directory holds (encrypted, signed), so a worker elsewhere needs only the DSN and the key.
TABLES_V6 = """
CREATE TABLE IF NOT EXISTS vault_files (
  name TEXT PRIMARY KEY, data BLOB NOT NULL, sha TEXT NOT NULL);
"""


def _tables_v6(db) -> None:
    for stmt in statements(TABLES_V6):
        db.execute(stmt)


STORE_SCHEMA = Schema(
    "run store", steps=(_tables_v1, _tables_v2, _tables_v3, _tables_v4, _tables_v5, _tables_v6)
)
