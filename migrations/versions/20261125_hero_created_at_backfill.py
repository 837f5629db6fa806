"""hero.created_at, backfill: stamp the heroes that predate the column, 1000 rows per transaction

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

Step 2 of 3 (the not-null-column lesson). Nobody recorded when the existing heroes were created,
so each gets the time its batch ran: the earliest moment the database can vouch for. One UPDATE of
the whole table would lock every row it touches (and, on SQLite, the whole database) until it
commits; batches by primary-key range, each committed on its own, keep every lock short and let
the application keep writing in between. Rows inserted meanwhile already have a value (0003's
default) and are skipped (`created_at IS NULL`). Offline (`--sql`) there is no table to measure,
so one UPDATE is printed instead.

Downgrade: nothing to undo. The backfilled timestamps stay, and the column stays nullable (0005's
downgrade). Nothing is lost either way.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from heroes.migrate import outside_transaction

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
hero = sa.table("hero", sa.column("id", sa.Integer), sa.column("created_at", sa.DateTime(timezone=True)))


def upgrade() -> None:
    missing = hero.c.created_at.is_(None)
    stamp = {"created_at": sa.func.current_timestamp()}
    if context.is_offline_mode():
        op.execute(hero.update().where(missing).values(stamp))
        return
    low, high = op.get_bind().execute(sa.select(sa.func.min(hero.c.id), sa.func.max(hero.c.id))).one()
    if low is None:
        return
    with outside_transaction():  # each batch commits alone: locks last one batch, not the whole table
        for start in range(low, high + 1, BATCH):
            batch = hero.c.id.between(start, start + BATCH - 1)
            op.execute(hero.update().where(batch, missing).values(stamp))


def downgrade() -> None:
    pass
