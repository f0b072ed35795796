"""The delivery engine: paused digests with their reason, soft-bounce counts.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("digests") as batch:
        batch.add_column(sa.Column("pause_reason", sa.Text, nullable=True))
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("soft_bounces", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("soft_bounces")
    with op.batch_alter_table("digests") as batch:
        batch.drop_column("pause_reason")
