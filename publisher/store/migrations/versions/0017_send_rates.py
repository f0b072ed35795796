"""The cluster's send rates (``[delivery] rate`` across nodes on PostgreSQL): ``send_rates``.

Empty at first: a bucket's row appears with the first slots a node reserves from it.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

from publisher.store.schema import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "send_rates",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("next_slot", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("send_rates")
