"""The initial schema: articles, subscribers, digests and the delivery ledger.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from publisher.store.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "articles",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(1000), nullable=False, unique=True),
        sa.Column("slug", sa.String(300), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("published", UTCDateTime(), nullable=False),
        sa.Column("updated", UTCDateTime(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("cadence", sa.String(10), nullable=False),
        sa.Column("topics", sa.Text, nullable=False, server_default="[]"),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("send_hour", sa.Integer, nullable=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("confirmed_at", UTCDateTime(), nullable=True),
        sa.Column("article_cursor", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_subscribers_plan", "subscribers", ["status", "cadence", "article_cursor"])
    op.create_table(
        "digests",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("cadence", sa.String(10), nullable=False),
        sa.Column("article_seqs", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "deliveries",
        sa.Column("digest_id", sa.String(64), sa.ForeignKey("digests.id"), primary_key=True),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("retry_at", UTCDateTime(), nullable=True),
        sa.Column("last_reply", sa.Text, nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_deliveries_state", "deliveries", ["digest_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_state", "deliveries")
    op.drop_table("deliveries")
    op.drop_table("digests")
    op.drop_index("ix_subscribers_plan", "subscribers")
    op.drop_table("subscribers")
    op.drop_table("articles")
