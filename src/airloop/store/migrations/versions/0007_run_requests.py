"""Changes to runs in flight asked through the API (mark failed / success), applied by
the scheduler service on its next pass (ADR 0039).

Revision ID: 0007_run_requests
Revises: 0006_api
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


revision = "0007_run_requests"
down_revision = "0006_api"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_request",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("dag_run_id", Id, nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("requested_by", sa.String(250), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("done_at", UtcDateTime(), nullable=True),
        sa.Column("outcome", LongText, nullable=True),
        sa.ForeignKeyConstraint(
            ["dag_run_id"],
            ["dag_run.id"],
            name="fk_run_request_dag_run_id_dag_run",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_run_request"),
    )
    op.create_index("ix_run_request_done_at", "run_request", ["done_at"])


def downgrade() -> None:
    op.drop_index("ix_run_request_done_at", table_name="run_request")
    op.drop_table("run_request")
