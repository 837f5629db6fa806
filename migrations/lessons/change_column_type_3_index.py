"""change-column-type, index and validate: ix_hero_age_big built CONCURRENTLY, its CHECK validated

Revision ID: ct_3
Revises: ct_2
Create Date: 2026-12-03

What hero.age has, built for age_big before the swap, without blocking writers: CREATE INDEX
CONCURRENTLY (outside a transaction) and VALIDATE CONSTRAINT (SHARE UPDATE EXCLUSIVE: writes go on),
each committed alone. SQLite: a plain CREATE INDEX; its CHECK was checked when ct_1 copied the table.

Downgrade: drops the index (a plain DROP INDEX: a moment of ACCESS EXCLUSIVE, and it runs inside a
caller's transaction, where CONCURRENTLY cannot). Brings back everything: an index holds no data; the
CHECK stays validated, which changes nothing.
"""

from collections.abc import Sequence

from alembic import op

from heroes.migrate import concurrently, outside_transaction

revision: str = "ct_3"
down_revision: str | None = "ct_2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with outside_transaction():  # CONCURRENTLY cannot run inside a transaction block
        op.create_index(
            op.f("ix_hero_age_big"), "hero", ["age_big"], unique=False, postgresql_concurrently=concurrently()
        )
        if op.get_context().dialect.name == "postgresql":
            op.execute("ALTER TABLE hero VALIDATE CONSTRAINT ck_hero_age_big_range")  # the scan, writes go on


def downgrade() -> None:
    op.drop_index(op.f("ix_hero_age_big"), table_name="hero")  # plain: it runs in a caller's transaction too
