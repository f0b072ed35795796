"""Indexes on ``source_files`` by id, slug and outcome (each within its source).

A scan the file watcher told of loads only the rows of the told paths, of the unsettled
files (broken, lost, refused) and of the files sharing an id or a slug with them, not a
source's every row: at 100,000 files that load and the contest over them cost most of a
second.

Revision ID: 0019
Revises: 0018
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_source_files_article_id", "source_files", ["source", "article_id"])
    op.create_index("ix_source_files_slug", "source_files", ["source", "slug"])
    op.create_index("ix_source_files_outcome", "source_files", ["source", "outcome"])


def downgrade() -> None:
    op.drop_index("ix_source_files_outcome", "source_files")
    op.drop_index("ix_source_files_slug", "source_files")
    op.drop_index("ix_source_files_article_id", "source_files")
