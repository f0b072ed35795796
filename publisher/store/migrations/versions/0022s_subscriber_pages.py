"""Indexes for the dashboard's subscriber pages: the list newest first by status and
cadence, and a subscriber's own ledger rows (their history; erasing them).

``ix_subscribers_listing`` (status, cadence, id) answers "the newest 50 with this status
and cadence" as one range read, where the older indexes order by the article cursor or
the send slot.  ``ix_deliveries_subscriber`` (subscriber_id, updated_at) reads the last
digests one subscriber received, and lets erasure delete their rows without a scan of
the ledger (its primary key starts with the digest).

Revision ID: 0022s
Revises: 0021
"""

from alembic import op

revision = "0022s"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_subscribers_listing", "subscribers", ["status", "cadence", "id"])
    op.create_index("ix_deliveries_subscriber", "deliveries", ["subscriber_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_subscriber", table_name="deliveries")
    op.drop_index("ix_subscribers_listing", table_name="subscribers")
