"""Click counts per link per digest (``[tracking] clicks = "aggregate"``): ``link_clicks``.

Empty at first: rows appear as readers follow counted links.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "link_clicks",
        sa.Column("digest_id", sa.String(64), primary_key=True),
        sa.Column("n", sa.Integer, primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("clicks", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("link_clicks")
