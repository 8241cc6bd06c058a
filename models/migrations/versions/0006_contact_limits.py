"""contact abuse limits (handlers.limits)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allowance", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("allowance_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("limited_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("failed_lookups", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("failed_lookups_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("failed_lookups_at")
        batch_op.drop_column("failed_lookups")
        batch_op.drop_column("limited_at")
        batch_op.drop_column("allowance_at")
        batch_op.drop_column("allowance")
