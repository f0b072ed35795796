"""Digests planned in batches: ``digests.plan_cursor``, the last subscriber id planned (NULL: plan complete).

Delivery starts after the first batch of a large digest instead of after the whole
plan; a digest is only finished once its plan is complete.  Existing digests are complete.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("digests") as batch:
        batch.add_column(sa.Column("plan_cursor", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("digests") as batch:
        batch.drop_column("plan_cursor")
