"""Indexes for the dashboard's subscriber pages: the list newest first by status and
cadence, and a subscriber's own ledger rows (their history; erasing them).

``ix_subscribers_listing`` (status, cadence, id) answers "the newest 50 with this status
and cadence" as one range read, where the older indexes order by the article cursor or
the send slot.  ``ix_deliveries_subscriber`` (subscriber_id, updated_at) reads the last
digests one subscriber received, and lets erasure delete their rows without a scan of
the ledger (its primary key starts with the digest).  On PostgreSQL the addresses take
the "C" collation (code point order, as SQLite's): a search by address prefix is then one
range of their unique index, which the database's own collation may not allow (en_US
skips punctuation).  Rebuilds that index: seconds at a million subscribers.

Revision ID: 0023
Revises: 0022
"""

import sqlalchemy as sa
from alembic import op

from publisher.store import aggregates

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_subscribers_listing", "subscribers", ["status", "cadence", "id"])
    op.create_index("ix_deliveries_subscriber", "deliveries", ["subscriber_id", "updated_at"])
    if op.get_bind().dialect.name == "postgresql":
        _set_address_type(sa.String(320, collation="C"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _set_address_type(sa.String(320))
    op.drop_index("ix_deliveries_subscriber", table_name="deliveries")
    op.drop_index("ix_subscribers_listing", table_name="subscribers")


def _set_address_type(address: sa.String) -> None:
    """PostgreSQL won't change the type of a column its triggers name: the counts' triggers
    step aside for the change, in this transaction (no change goes uncounted)."""
    aggregates.drop(op.get_bind())
    op.alter_column("subscribers", "email", type_=address, existing_nullable=False)
    aggregates.create(op.get_bind())
