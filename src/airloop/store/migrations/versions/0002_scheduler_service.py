"""The scheduler service: DAGs, import errors, heartbeats, data intervals.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# Frozen here (see 0001).
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def UtcDateTime() -> sa.DateTime:
    return sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dag",
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("fileloc", sa.String(1024), nullable=False),
        sa.Column("is_paused", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("schedule", sa.String(250)),
        sa.Column("last_parsed", UtcDateTime()),
        sa.PrimaryKeyConstraint("dag_id", name="pk_dag"),
    )
    op.create_table(
        "import_error",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("fileloc", sa.String(1024), nullable=False),
        sa.Column("line", sa.Integer()),
        sa.Column("message", LongText, nullable=False),
        sa.Column("traceback", LongText),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_import_error"),
    )
    op.create_table(
        "scheduler_heartbeat",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("hostname", sa.String(250), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("heartbeat_at", UtcDateTime(), nullable=False),
        sa.Column("loop_lag", sa.Float()),
        sa.Column("running_tasks", sa.Integer()),
        sa.Column("active_runs", sa.Integer()),
        sa.PrimaryKeyConstraint("id", name="pk_scheduler_heartbeat"),
    )
    with op.batch_alter_table("dag_run") as batch:
        batch.add_column(sa.Column("data_interval_start", UtcDateTime()))
        batch.add_column(sa.Column("data_interval_end", UtcDateTime()))
        batch.create_unique_constraint("uq_dag_run_dag_id_logical_date", ["dag_id", "logical_date"])


def downgrade() -> None:
    with op.batch_alter_table("dag_run") as batch:
        batch.drop_constraint("uq_dag_run_dag_id_logical_date", type_="unique")
        batch.drop_column("data_interval_end")
        batch.drop_column("data_interval_start")
    op.drop_table("scheduler_heartbeat")
    op.drop_table("import_error")
    op.drop_table("dag")
