"""Aggregates for the dashboard: subscriber, message, digest and per-domain counts, kept by triggers.

Creates ``subscriber_counts``, ``message_counts``, ``digest_counts`` and ``domain_counts``, installs the
triggers that keep them (:mod:`publisher.store.aggregates`) and counts what the base
tables hold already, in this migration's transaction.

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

from publisher.store import aggregates
from publisher.store.schema import UTCDateTime

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscriber_counts",
        sa.Column("day", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("day", "status"),
    )
    op.create_table(
        "message_counts",
        sa.Column("hour", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("hour", "state"),
    )
    op.create_index("ix_message_counts_state", "message_counts", ["state", "hour"])
    op.create_table(
        "digest_counts",
        sa.Column("digest_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("digest_id", "state"),
    )
    op.create_table(
        "domain_counts",
        sa.Column("hour", UTCDateTime(), nullable=False),
        sa.Column("domain", sa.String(320), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("hour", "domain", "kind"),
    )
    connection = op.get_bind()
    aggregates.create(connection)
    aggregates.rebuild(connection)


def downgrade() -> None:
    aggregates.drop(op.get_bind())
    op.drop_table("domain_counts")
    op.drop_table("digest_counts")
    op.drop_index("ix_message_counts_state", "message_counts")
    op.drop_table("message_counts")
    op.drop_table("subscriber_counts")
