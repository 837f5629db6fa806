"""hero.created_at, index: built CONCURRENTLY on PostgreSQL, so writes go on meanwhile

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27

The concurrent-index lesson. A plain CREATE INDEX holds a SHARE lock on hero until its transaction
ends: every INSERT, UPDATE and DELETE waits for the whole build (and queues behind it even while it
waits for a lock itself). CREATE INDEX CONCURRENTLY lets writes through; PostgreSQL refuses it inside
a transaction block, so it runs in an autocommit block (the revisions before it are committed first).
If it fails halfway it leaves an INVALID index: drop it, then run the revision again. SQLite has no
concurrent build and needs none (one writer at a time): the same operation is a plain CREATE INDEX.
A lab scratch database is built empty, so it gets a plain CREATE INDEX too (heroes.migrate.concurrently:
CONCURRENTLY would wait for every transaction open in the database, a bad route's held on purpose too).

Downgrade: drops the index (CONCURRENTLY on PostgreSQL). Brings back everything: an index holds no data.
"""

from collections.abc import Sequence

from alembic import op

from heroes.migrate import concurrently, outside_transaction

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with outside_transaction():  # CONCURRENTLY cannot run inside a transaction block
        op.create_index(
            op.f("ix_hero_created_at"),
            "hero",
            ["created_at"],
            unique=False,
            postgresql_concurrently=concurrently(),
        )


def downgrade() -> None:
    with outside_transaction():
        op.drop_index(op.f("ix_hero_created_at"), table_name="hero", postgresql_concurrently=True)
