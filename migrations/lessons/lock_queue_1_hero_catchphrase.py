"""hero.catchphrase, added nullable without a default: "instant", and still an ACCESS EXCLUSIVE lock

Revision ID: lq_1
Revises:
Create Date: 2026-12-03

The lock-queue lesson. A nullable column with no default is a catalogue change only (no row is
rewritten), yet ALTER TABLE takes ACCESS EXCLUSIVE on hero: behind a transaction that has read hero
and is still open, it waits, and every query on hero that comes after it waits behind it. Run it with
a short lock_timeout and retry on 55P03 (lock_not_available): heroes.lessons.lock_queue does. The
model does not map the column: the running release neither reads nor writes it.

Downgrade: drops hero.catchphrase (the same ACCESS EXCLUSIVE lock); the catchphrases written since
the upgrade cannot be brought back: they go with the column.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "lq_1"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("lock-queue",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("hero", sa.Column("catchphrase", sa.Text(), nullable=True))  # no default: no rewrite


def downgrade() -> None:
    op.drop_column("hero", "catchphrase")
