"""Several schedulers on one database (ADR 0041): DAG leases with fencing tokens, the
scheduler registry's own expiry, and per-scheduler pool quotas.

Revision ID: 0008_scheduler_leases
Revises: 0007_run_requests
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# Frozen here (see 0001).
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def UtcDateTime() -> sa.DateTime:
    return sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


revision = "0008_scheduler_leases"
down_revision = "0007_run_requests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dag") as batch:
        # The scheduler (registry row) that owns the DAG and its runs, the fencing
        # token (only ever incremented: by each claim) and the lease's end, on the
        # database's clock.
        batch.add_column(sa.Column("owner_id", Id, nullable=True))
        batch.add_column(
            sa.Column("lease_token", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("lease_expires_at", UtcDateTime(), nullable=True))
        batch.create_index("ix_dag_owner_id", ["owner_id"])
    with op.batch_alter_table("scheduler_heartbeat") as batch:
        # The registry: a scheduler is live until expires_at (database clock).
        batch.add_column(sa.Column("expires_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("dags_owned", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("mode", sa.String(20), nullable=True))
    op.create_table(
        "pool_quota",
        sa.Column("pool", sa.String(250), nullable=False),
        sa.Column("scheduler_id", Id, nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("in_use", sa.Integer(), nullable=False),
        sa.Column("demand", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["scheduler_id"],
            ["scheduler_heartbeat.id"],
            name="fk_pool_quota_scheduler_id_scheduler_heartbeat",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pool", "scheduler_id", name="pk_pool_quota"),
    )


def downgrade() -> None:
    op.drop_table("pool_quota")
    with op.batch_alter_table("scheduler_heartbeat") as batch:
        batch.drop_column("mode")
        batch.drop_column("dags_owned")
        batch.drop_column("expires_at")
    with op.batch_alter_table("dag") as batch:
        batch.drop_index("ix_dag_owner_id")
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_token")
        batch.drop_column("owner_id")
