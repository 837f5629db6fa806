"""hero.name: duplicates renamed, then a unique index built CONCURRENTLY (writers go on meanwhile)

Revision ID: uq_1
Revises:
Create Date: 2026-12-03

The add-unique-constraint lesson. No unique constraint can be added while two heroes share a name,
so this revision first resolves the duplicates the lesson's report lists, with one documented rule:
the hero with the lowest id keeps the name, every later one is renamed "<name> #<id>" (no row lost,
row locks on the renamed rows only). The right rule is the product's call (merge the rows, ask their
owners, keep the newest); make it before the revision runs, and stop the code that writes duplicates
first, or new ones keep arriving. Then CREATE UNIQUE INDEX CONCURRENTLY uq_hero_name, in an autocommit
block (the rename is committed first): a lock that lets writers through, two scans of the table. A
duplicate written before the build ends makes it fail and leaves an INVALID index (the concurrent-index
lesson's bad/invalid): DROP INDEX CONCURRENTLY uq_hero_name, then run this revision again. uq_2 turns the
index into the constraint. SQLite: the same UPDATE and a plain CREATE UNIQUE INDEX (no concurrent build
there, one writer at a time).

Downgrade: drops the index (CONCURRENTLY on PostgreSQL). The renamed heroes keep their new names: nothing
records which names the upgrade changed.
"""

from collections.abc import Sequence

from alembic import op

from heroes.migrate import concurrently, outside_transaction

revision: str = "uq_1"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("add-unique-constraint",)
depends_on: str | Sequence[str] | None = None

INDEX = "uq_hero_name"  # the constraint's name to be, so uq_2 renames nothing
RENAME_LATER_DUPLICATES = (
    "UPDATE hero SET name = name || ' #' || id WHERE id NOT IN (SELECT min(id) FROM hero GROUP BY name)"
)


def upgrade() -> None:
    op.execute(RENAME_LATER_DUPLICATES)  # the lowest id keeps its name
    with outside_transaction():  # CONCURRENTLY cannot run inside a transaction block
        op.create_index(INDEX, "hero", ["name"], unique=True, postgresql_concurrently=concurrently())


def downgrade() -> None:
    with outside_transaction():
        op.drop_index(INDEX, table_name="hero", postgresql_concurrently=True)
