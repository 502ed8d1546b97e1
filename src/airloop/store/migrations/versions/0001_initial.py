"""The first tables: dag_run, task_instance, xcom, task_log.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# Frozen here, not imported from airloop.store: a migration must keep creating what it
# created on the day it was written, whatever later code does to those modules.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def UtcDateTime() -> sa.DateTime:
    """Naive UTC datetimes, with microseconds on MySQL."""
    return sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dag_run",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("run_type", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("logical_date", UtcDateTime(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("start_date", UtcDateTime()),
        sa.Column("end_date", UtcDateTime()),
        sa.Column("note", LongText),
        sa.PrimaryKeyConstraint("id", name="pk_dag_run"),
        sa.UniqueConstraint("dag_id", "run_id", name="uq_dag_run_dag_id_run_id"),
    )
    op.create_index("ix_dag_run_dag_id_state", "dag_run", ["dag_id", "state"])
    op.create_table(
        "task_instance",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("dag_run_id", Id, nullable=False),
        sa.Column("task_id", sa.String(250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("max_tries", sa.Integer(), nullable=False),
        sa.Column("pool", sa.String(250), nullable=False),
        sa.Column("pool_slots", sa.Integer(), nullable=False),
        sa.Column("priority_weight", sa.Integer(), nullable=False),
        sa.Column("operator", sa.String(250)),
        sa.Column("queued_at", UtcDateTime()),
        sa.Column("start_date", UtcDateTime()),
        sa.Column("end_date", UtcDateTime()),
        sa.Column("duration", sa.Float()),
        sa.Column("hostname", sa.String(250)),
        sa.Column("executor", sa.String(50)),
        sa.Column("next_retry_at", UtcDateTime()),
        sa.Column("error", LongText),
        sa.Column("checkpoint", sa.JSON()),
        sa.Column("updated_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_task_instance"),
        sa.ForeignKeyConstraint(
            ["dag_run_id"],
            ["dag_run.id"],
            name="fk_task_instance_dag_run_id_dag_run",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "dag_run_id",
            "task_id",
            "map_index",
            name="uq_task_instance_dag_run_id_task_id_map_index",
        ),
    )
    op.create_index("ix_task_instance_state", "task_instance", ["state"])
    op.create_table(
        "xcom",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("dag_run_id", Id, nullable=False),
        sa.Column("task_id", sa.String(250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", LongText, nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_xcom"),
        sa.ForeignKeyConstraint(
            ["dag_run_id"], ["dag_run.id"], name="fk_xcom_dag_run_id_dag_run", ondelete="CASCADE"
        ),
        sa.UniqueConstraint(
            "dag_run_id",
            "task_id",
            "map_index",
            "key",
            name="uq_xcom_dag_run_id_task_id_map_index_key",
        ),
    )
    op.create_table(
        "task_log",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("dag_run_id", Id, nullable=False),
        sa.Column("task_id", sa.String(250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_task_log"),
        sa.ForeignKeyConstraint(
            ["dag_run_id"],
            ["dag_run.id"],
            name="fk_task_log_dag_run_id_dag_run",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "dag_run_id",
            "task_id",
            "map_index",
            "try_number",
            name="uq_task_log_dag_run_id_task_id_map_index_try_number",
        ),
    )


def downgrade() -> None:
    op.drop_table("task_log")
    op.drop_table("xcom")
    op.drop_index("ix_task_instance_state", table_name="task_instance")
    op.drop_table("task_instance")
    op.drop_index("ix_dag_run_dag_id_state", table_name="dag_run")
    op.drop_table("dag_run")
