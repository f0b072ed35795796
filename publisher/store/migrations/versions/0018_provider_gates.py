"""Warm-up and circuit breakers per mailbox provider: ``provider_pauses``, and an index
on the ledger by state and time (the messages sent today, or in the breakers' window).

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

from publisher.store.schema import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_pauses",
        sa.Column("provider", sa.String(40), primary_key=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("since", UTCDateTime(), nullable=True),
        sa.Column("resumed_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_deliveries_sent", "deliveries", ["state", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_sent", "deliveries")
    op.drop_table("provider_pauses")
