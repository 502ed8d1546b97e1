"""Rendered template fields per task instance and try; runs without a logical date.

Revision ID: 0003_rendered
Revises: 0002
Create Date: 2026-12-01
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


revision = "0003_rendered"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rendered_task_instance_fields",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("dag_run_id", Id, nullable=False),
        sa.Column("task_id", sa.String(250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("rendered_fields", LongText, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rendered_task_instance_fields"),
        sa.ForeignKeyConstraint(
            ["dag_run_id"],
            ["dag_run.id"],
            name="fk_rendered_task_instance_fields_dag_run_id_dag_run",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_rendered_fields_ti_try",
        "rendered_task_instance_fields",
        ["dag_run_id", "task_id", "map_index", "try_number"],
    )
    # A run created without a logical date (the library API, as Airflow 3) stores NULL;
    # the unique (dag_id, logical_date) constraint still holds for dated runs.
    with op.batch_alter_table("dag_run") as batch:
        batch.alter_column("logical_date", existing_type=UtcDateTime(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("dag_run") as batch:
        batch.alter_column("logical_date", existing_type=UtcDateTime(), nullable=False)
    op.drop_index(
        "ix_rendered_fields_ti_try",
        table_name="rendered_task_instance_fields",
    )
    op.drop_table("rendered_task_instance_fields")
