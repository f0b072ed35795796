"""Feed documents: the feeds as last built, so a start or another node serves them without rebuilding.

Empty at first: the feed shelf fills it at its next build.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

from publisher.store.schema import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_documents",
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("slug", sa.Text, nullable=False),
        sa.Column("input", sa.String(64), nullable=False),
        sa.Column("went_through", sa.Integer, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("gzipped", sa.LargeBinary, nullable=False),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("etag", sa.Text, nullable=False),
        sa.Column("last_modified", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feed_documents")
