"""Connections and variables (Airflow's columns; secrets encrypted by the caller).

Revision ID: 0005_connections
Revises: 0004_mapping
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# Frozen here (see 0001).
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

revision = "0005_connections"
down_revision = "0004_mapping"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connection",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("conn_id", sa.String(250), nullable=False),
        sa.Column("conn_type", sa.String(500)),
        sa.Column("description", sa.Text()),
        sa.Column("host", sa.String(500)),
        sa.Column("schema", sa.String(500)),
        sa.Column("login", LongText),
        sa.Column("password", LongText),
        sa.Column("port", sa.Integer()),
        sa.Column("extra", LongText),
        sa.Column("is_encrypted", sa.Boolean(), nullable=False),
        sa.Column("is_extra_encrypted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_connection"),
        sa.UniqueConstraint("conn_id", name="uq_connection_conn_id"),
    )
    op.create_table(
        "variable",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("val", LongText),
        sa.Column("description", sa.Text()),
        sa.Column("is_encrypted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_variable"),
        sa.UniqueConstraint("key", name="uq_variable_key"),
    )


def downgrade() -> None:
    op.drop_table("variable")
    op.drop_table("connection")
