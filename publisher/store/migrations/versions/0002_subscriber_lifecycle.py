"""The subscriber lifecycle: how a subscriber was confirmed, when they left, suppressions.

Revision ID: 0002
Revises: 0001
"""

import hashlib
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from publisher.store.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("confirmed_source", sa.String(20), nullable=True))
        batch.add_column(sa.Column("unsubscribed_at", UTCDateTime(), nullable=True))
    suppressions = op.create_table(
        "suppressions",
        sa.Column("email_hash", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.execute(sa.text("UPDATE subscribers SET confirmed_source = source WHERE confirmed_at IS NOT NULL"))
    # Subscribers who left before suppressions existed stay suppressed from now on.
    bind = op.get_bind()
    left = bind.execute(
        sa.text("SELECT email, status FROM subscribers WHERE status IN ('unsubscribed', 'bounced', 'complained')")
    ).all()
    now = datetime.now(UTC)
    if left:
        bind.execute(
            sa.insert(suppressions),
            [
                {"email_hash": hashlib.sha256(email.encode()).hexdigest(), "reason": status, "created_at": now}
                for email, status in left
            ],
        )


def downgrade() -> None:
    op.drop_table("suppressions")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("unsubscribed_at")
        batch.drop_column("confirmed_source")
