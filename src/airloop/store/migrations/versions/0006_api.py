"""The HTTP API and the web UI: serialized DAGs, pools, users and API tokens, and
the indexes the grid and live updates read through.

Revision ID: 0006_api
Revises: 0005_connections
Create Date: 2026-12-02
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


revision = "0006_api"
down_revision = "0005_connections"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "serialized_dag",
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("fileloc", sa.String(1024), nullable=False),
        sa.Column("data", LongText, nullable=False),
        sa.Column("dag_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("dag_id", name="pk_serialized_dag"),
    )
    op.create_table(
        "slot_pool",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("pool", sa.String(250), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_slot_pool"),
        sa.UniqueConstraint("pool", name="uq_slot_pool_pool"),
    )
    op.create_table(
        "airloop_user",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(250), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("last_login", UtcDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_airloop_user"),
        sa.UniqueConstraint("username", name="uq_airloop_user_username"),
    )
    op.create_table(
        "api_token",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime()),
        sa.Column("last_used_at", UtcDateTime()),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["airloop_user.id"],
            name="fk_api_token_user_id_airloop_user",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_api_token"),
        sa.UniqueConstraint("token_hash", name="uq_api_token_token_hash"),
    )
    # The grid counts task instances per (run, task, state): an index-only scan.
    op.create_index(
        "ix_task_instance_dag_run_id_task_id_state",
        "task_instance",
        ["dag_run_id", "task_id", "state"],
    )
    # Live updates ask a run for what changed since a time.
    op.create_index(
        "ix_task_instance_dag_run_id_updated_at", "task_instance", ["dag_run_id", "updated_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_task_instance_dag_run_id_updated_at", table_name="task_instance")
    op.drop_index("ix_task_instance_dag_run_id_task_id_state", table_name="task_instance")
    op.drop_table("api_token")
    op.drop_table("airloop_user")
    op.drop_table("slot_pool")
    op.drop_table("serialized_dag")
