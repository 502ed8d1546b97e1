"""The tables. Alembic migrations create them; this module is what the code queries."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from airloop.store.types import LongText, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; elsewhere use 64-bit ids.
Id = BigInteger().with_variant(Integer(), "sqlite")
ID_LEN = 250  # dag_id, task_id, run_id, pool names (MySQL needs bounded lengths to index)

dag_run = Table(
    "dag_run",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dag_id", String(ID_LEN), nullable=False),
    Column("run_id", String(ID_LEN), nullable=False),
    Column("run_type", String(20), nullable=False),
    Column("state", String(20), nullable=False),
    # NULL: a run created without one (the library API, as Airflow 3).
    Column("logical_date", UtcDateTime()),
    Column("params", JSON(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("start_date", UtcDateTime()),
    Column("end_date", UtcDateTime()),
    Column("note", LongText),
    Column("data_interval_start", UtcDateTime()),
    Column("data_interval_end", UtcDateTime()),
    UniqueConstraint("dag_id", "run_id"),
    # One run per DAG and logical date: a schedule interval can never run twice.
    UniqueConstraint("dag_id", "logical_date"),
    Index(None, "dag_id", "state"),
)

task_instance = Table(
    "task_instance",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dag_run_id", Id, ForeignKey("dag_run.id", ondelete="CASCADE"), nullable=False),
    Column("task_id", String(ID_LEN), nullable=False),
    Column("map_index", Integer(), nullable=False, default=-1),
    Column("state", String(20), nullable=False),
    Column("try_number", Integer(), nullable=False, default=0),
    Column("max_tries", Integer(), nullable=False, default=1),
    Column("pool", String(ID_LEN), nullable=False),
    Column("pool_slots", Integer(), nullable=False, default=1),
    Column("priority_weight", Integer(), nullable=False, default=1),
    Column("operator", String(ID_LEN)),
    Column("queued_at", UtcDateTime()),
    Column("start_date", UtcDateTime()),
    Column("end_date", UtcDateTime()),
    Column("duration", Float()),
    Column("hostname", String(ID_LEN)),
    Column("executor", String(50)),
    Column("next_retry_at", UtcDateTime()),
    Column("error", LongText),
    # A mapped instance's label (its map_index_template, rendered after the try).
    Column("rendered_map_index", String(ID_LEN)),
    # For later issues: an operator's durable handle on external work (a Batch job id).
    Column("checkpoint", JSON()),
    Column("updated_at", UtcDateTime()),
    UniqueConstraint("dag_run_id", "task_id", "map_index"),
    Index(None, "state"),
    # The grid counts instances per (run, task, state): an index-only scan.
    Index(None, "dag_run_id", "task_id", "state"),
    # Live updates ask a run for what changed since a time.
    Index(None, "dag_run_id", "updated_at"),
)

xcom = Table(
    "xcom",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dag_run_id", Id, ForeignKey("dag_run.id", ondelete="CASCADE"), nullable=False),
    Column("task_id", String(ID_LEN), nullable=False),
    Column("map_index", Integer(), nullable=False),
    Column("key", String(ID_LEN), nullable=False),
    Column("value", LongText, nullable=False),  # JSON text, size-checked before insert
    Column("size", Integer(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("dag_run_id", "task_id", "map_index", "key"),
)

task_log = Table(
    "task_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dag_run_id", Id, ForeignKey("dag_run.id", ondelete="CASCADE"), nullable=False),
    Column("task_id", String(ID_LEN), nullable=False),
    Column("map_index", Integer(), nullable=False),
    Column("try_number", Integer(), nullable=False),
    Column("path", String(1024), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("dag_run_id", "task_id", "map_index", "try_number"),
)

# The values a try's template fields rendered to (JSON text of {field: value}), masked
# and size-capped in the worker; written with the try's end (the lean path).
rendered_task_instance_fields = Table(
    "rendered_task_instance_fields",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dag_run_id", Id, ForeignKey("dag_run.id", ondelete="CASCADE"), nullable=False),
    Column("task_id", String(ID_LEN), nullable=False),
    Column("map_index", Integer(), nullable=False),
    Column("try_number", Integer(), nullable=False),
    Column("rendered_fields", LongText, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # Not unique: a try resumed after a restart may render again; reads take the newest.
    Index("ix_rendered_fields_ti_try", "dag_run_id", "task_id", "map_index", "try_number"),
)

dag = Table(
    "dag",
    metadata,
    Column("dag_id", String(ID_LEN), primary_key=True),
    Column("fileloc", String(1024), nullable=False),
    Column("is_paused", Boolean(), nullable=False),
    Column("is_active", Boolean(), nullable=False),
    Column("schedule", String(ID_LEN)),
    Column("last_parsed", UtcDateTime()),
    # Several schedulers (ADR 0041): the owner (a scheduler_heartbeat row), the fencing
    # token (incremented by every claim; each write about the DAG's runs checks it)
    # and the lease's end on the database's clock.
    Column("owner_id", Id),
    Column("lease_token", BigInteger(), nullable=False, server_default="0"),
    Column("lease_expires_at", UtcDateTime()),
    Index(None, "owner_id"),
)

import_error = Table(
    "import_error",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("fileloc", String(1024), nullable=False),
    Column("line", Integer()),
    Column("message", LongText, nullable=False),
    Column("traceback", LongText),
    Column("created_at", UtcDateTime(), nullable=False),
)

scheduler_heartbeat = Table(
    "scheduler_heartbeat",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("hostname", String(ID_LEN), nullable=False),
    Column("pid", Integer(), nullable=False),
    Column("state", String(20), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("heartbeat_at", UtcDateTime(), nullable=False),
    Column("loop_lag", Float()),
    Column("running_tasks", Integer()),
    Column("active_runs", Integer()),
    # The registry (ADR 0041): live until expires_at (database clock), DAGs leased,
    # and how it runs ("ha": leases; "single": the one-scheduler lock).
    Column("expires_at", UtcDateTime()),
    Column("dags_owned", Integer()),
    Column("mode", String(20)),
)

# Each live scheduler's share of a pool's slots (ADR 0041): the shares of one pool
# never add up to more than its slots; changed only under the pool row's lock.
pool_quota = Table(
    "pool_quota",
    metadata,
    Column("pool", String(ID_LEN), primary_key=True),
    Column(
        "scheduler_id",
        Id,
        ForeignKey("scheduler_heartbeat.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("slots", Integer(), nullable=False),
    Column("in_use", Integer(), nullable=False),
    Column("demand", Integer(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Connections and variables (Airflow's columns). Secrets are Fernet tokens when the
# is_*encrypted flags say so: the connections layer encrypts, the store keeps text.
connection = Table(
    "connection",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conn_id", String(ID_LEN), nullable=False),
    Column("conn_type", String(500)),
    Column("description", Text()),
    Column("host", String(500)),
    Column("schema", String(500)),
    Column("login", LongText),
    Column("password", LongText),
    Column("port", Integer()),
    Column("extra", LongText),
    Column("is_encrypted", Boolean(), nullable=False),
    Column("is_extra_encrypted", Boolean(), nullable=False),
    UniqueConstraint("conn_id"),
)

variable = Table(
    "variable",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(ID_LEN), nullable=False),
    Column("val", LongText),
    Column("description", Text()),
    Column("is_encrypted", Boolean(), nullable=False),
    UniqueConstraint("key"),
)

# A DAG's structure as the scheduler parsed it (JSON text of
# airloop.dagbag.serialized.SerializedDag), so the API server can show a DAG without
# importing its file; dag_hash changes when the structure does.
serialized_dag = Table(
    "serialized_dag",
    metadata,
    Column("dag_id", String(ID_LEN), primary_key=True),
    Column("fileloc", String(1024), nullable=False),
    Column("data", LongText, nullable=False),
    Column("dag_hash", String(64), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Pools edited through the API and UI; the settings' `pools` seed them.
slot_pool = Table(
    "slot_pool",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pool", String(ID_LEN), nullable=False),
    Column("slots", Integer(), nullable=False),
    Column("description", Text()),
    UniqueConstraint("pool"),
)

# Users of the API and UI (passwords hashed with argon2) and their API tokens (stored
# as hashes only).
airloop_user = Table(
    "airloop_user",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(ID_LEN), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(20), nullable=False),
    Column("is_active", Boolean(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_login", UtcDateTime()),
    UniqueConstraint("username"),
)

api_token = Table(
    "api_token",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("airloop_user.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(ID_LEN), nullable=False),
    Column("token_hash", String(128), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime()),
    Column("last_used_at", UtcDateTime()),
    UniqueConstraint("token_hash"),
)

# Changes to runs in flight asked through the API (``action``: mark_failed,
# mark_success), applied by the scheduler service on its next pass; ``done_at`` and
# ``outcome`` say when and how (ADR 0039).
run_request = Table(
    "run_request",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dag_run_id", Id, ForeignKey("dag_run.id", ondelete="CASCADE"), nullable=False),
    Column("action", String(20), nullable=False),
    Column("requested_by", String(ID_LEN), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("done_at", UtcDateTime()),
    Column("outcome", LongText),
    Index(None, "done_at"),
)
