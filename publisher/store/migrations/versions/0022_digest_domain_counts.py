"""Each digest's ledger rows by recipient domain and state, kept by the triggers.

Creates ``digest_domain_counts`` (the dashboard's digest page shows a digest's messages per
mailbox provider from it, without grouping the digest's rows), installs the triggers again
with its counting added (:mod:`publisher.store.aggregates`) and recounts the aggregates from
the base tables, in this migration's transaction (seconds at ten million ledger rows, with
writes waiting).

Revision ID: 0022
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

from publisher.store import aggregates

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "digest_domain_counts",
        sa.Column("digest_id", sa.String(64), nullable=False),
        sa.Column("domain", sa.String(320), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("digest_id", "domain", "state"),
    )
    connection = op.get_bind()
    aggregates.drop(connection)
    aggregates.create(connection)
    aggregates.rebuild(connection)


def downgrade() -> None:
    """The table and the triggers go (as 0021's downgrade does with its own)."""
    connection = op.get_bind()
    aggregates.drop(connection)
    op.drop_table("digest_domain_counts")
