"""Scheduled articles: those whose date is still to come wait here, out of ``articles``;
and when an operator unpublished an article (``articles.withdrawn_at``).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from publisher.content.model import MAX_ID_LENGTH
from publisher.store.schema import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduled_articles",
        sa.Column("id", sa.String(MAX_ID_LENGTH), primary_key=True),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("publish_at", UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_scheduled_articles_publish_at", "scheduled_articles", ["publish_at"])
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("withdrawn_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.drop_column("withdrawn_at")
    op.drop_index("ix_scheduled_articles_publish_at", table_name="scheduled_articles")
    op.drop_table("scheduled_articles")
