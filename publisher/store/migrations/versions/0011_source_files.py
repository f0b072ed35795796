"""Source files: what each Markdown file gave at the last scan, so a scan reads only what changed.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

from publisher.content.model import MAX_ID_LENGTH, MAX_SLUG_LENGTH

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_files",
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("parsed_with", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("article_id", sa.String(MAX_ID_LENGTH), nullable=True),
        sa.Column("slug", sa.String(MAX_SLUG_LENGTH), nullable=True),
        sa.Column("problems", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("source", "path"),
    )


def downgrade() -> None:
    op.drop_table("source_files")
