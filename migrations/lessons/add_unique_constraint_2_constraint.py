"""hero.name: the unique index uq_1 built becomes the constraint uq_hero_name, no row read

Revision ID: uq_2
Revises: uq_1
Create Date: 2026-12-03

The add-unique-constraint lesson. ALTER TABLE hero ADD CONSTRAINT uq_hero_name UNIQUE USING INDEX
uq_hero_name: the index exists and is valid, so PostgreSQL builds nothing and reads no row (it refuses
an INVALID index: "index ... is not valid"). It still takes ACCESS EXCLUSIVE on hero, for an instant:
behind a long transaction it queues like any ALTER TABLE (lock-queue), and the migration's lock_timeout
bounds that wait. Why a constraint when the index already refuses duplicates: it is what a model
declares (UniqueConstraint) and autogenerate compares, and what ON CONFLICT ON CONSTRAINT names.
SQLite has no ADD CONSTRAINT: batch mode copies the table with UNIQUE in its CREATE TABLE and drops
uq_1's index, one scan of a table only one writer uses at a time anyway.

Downgrade: drops the constraint (its index goes with it), then builds the unique index again, CONCURRENTLY
on PostgreSQL, as uq_1 left it. Brings back everything: a constraint holds no data.
"""

from collections.abc import Sequence

from alembic import op

from heroes.migrate import outside_transaction

revision: str = "uq_2"
down_revision: str | None = "uq_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "uq_hero_name"


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        with op.batch_alter_table("hero") as batch:
            batch.drop_index(NAME)
            batch.create_unique_constraint(NAME, ["name"])
        return
    op.execute(f"ALTER TABLE hero ADD CONSTRAINT {NAME} UNIQUE USING INDEX {NAME}")  # no scan: uq_1 built it


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        with op.batch_alter_table("hero") as batch:
            batch.drop_constraint(NAME, type_="unique")
            batch.create_index(NAME, ["name"], unique=True)
        return
    op.drop_constraint(NAME, "hero", type_="unique")
    with outside_transaction():
        op.create_index(NAME, "hero", ["name"], unique=True, postgresql_concurrently=True)
