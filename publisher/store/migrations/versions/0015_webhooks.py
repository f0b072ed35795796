"""Outgoing webhooks: the events' outbox, the registered endpoints and the deliveries they are owed.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

from publisher.store.schema import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False, unique=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("url", sa.String(1000), primary_key=True),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_error_at", UTCDateTime(), nullable=True),
        sa.Column("last_success_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("endpoint", sa.String(1000), primary_key=True),
        sa.Column("event_seq", sa.Integer, sa.ForeignKey("webhook_events.seq"), primary_key=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_webhook_deliveries_key", "webhook_deliveries", ["endpoint", "key", "event_seq"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_key", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_table("webhook_events")
