"""Mapped task instances' labels: task_instance.rendered_map_index (map_index_template).

Revision ID: 0004_mapping
Revises: 0003_rendered
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_mapping"
down_revision = "0003_rendered"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_instance") as batch:
        batch.add_column(sa.Column("rendered_map_index", sa.String(250)))


def downgrade() -> None:
    with op.batch_alter_table("task_instance") as batch:
        batch.drop_column("rendered_map_index")
