"""Feed entries: the feeds' index of published articles by date and tag, with each one's prepared entry.

The feed shelf fills the tables from ``articles`` at its first build, so nothing is copied here.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

from publisher.content.model import MAX_ID_LENGTH
from publisher.store.schema import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_entries",
        sa.Column("article_id", sa.String(MAX_ID_LENGTH), primary_key=True),
        sa.Column("published", UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("entry", sa.Text, nullable=True),
        sa.Column("version", sa.String(64), nullable=True),
    )
    op.create_index("ix_feed_entries_published", "feed_entries", ["published"])
    op.create_table(
        "feed_tags",
        sa.Column("article_id", sa.String(MAX_ID_LENGTH), primary_key=True),
        sa.Column("slug", sa.Text, primary_key=True),
        sa.Column("tag", sa.Text, nullable=False),
        sa.Column("published", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_feed_tags_slug", "feed_tags", ["slug", "published"])


def downgrade() -> None:
    op.drop_table("feed_tags")
    op.drop_table("feed_entries")
