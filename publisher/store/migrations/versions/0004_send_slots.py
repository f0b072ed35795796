"""Send slots: the last daily/weekly slot each subscriber was planned for.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from publisher.store.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("last_slot", UTCDateTime(), nullable=True))
    op.create_index("ix_subscribers_slots", "subscribers", ["status", "cadence", "timezone", "send_hour"])


def downgrade() -> None:
    op.drop_index("ix_subscribers_slots", table_name="subscribers")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("last_slot")
