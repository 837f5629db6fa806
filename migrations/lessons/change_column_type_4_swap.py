"""change-column-type, swap: drop hero.age, rename age_big to age, in one short transaction

Revision ID: ct_4
Revises: ct_3
Create Date: 2026-12-03

The last step: hero.age is BIGINT from now on, and no row was rewritten under a lock. On PostgreSQL
the whole swap is catalog changes (drop the trigger, DROP COLUMN age, which takes its index and CHECK
with it, then rename the column, its index and its CHECK): ACCESS EXCLUSIVE for milliseconds, one
transaction, so no query ever sees hero without an age. Every release reads and writes `age`
throughout. SQLite has one type for every integer already; batch mode copies the table once more.

Downgrade: renames age back to age_big, adds an INTEGER age, copies the values into it, and restores
the index, the CHECK and the trigger (ct_3's state). Brings back every age: the CHECK keeps them
within 0..10000, so each fits an INTEGER. The downgrade itself is not gentle: its UPDATE rewrites
every row in one transaction.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from heroes.migrate import lint_ignore

revision: str = "ct_4"
down_revision: str | None = "ct_3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RANGE = "BETWEEN 0 AND 10000"


def dual_write(create: bool) -> None:
    context.script.get_revision("ct_1").module.dual_write(create)  # ct_1's trigger, as it wrote it


def upgrade() -> None:
    dual_write(create=False)
    if op.get_context().dialect.name == "postgresql":
        lint_ignore("ban-drop-column", "age_big holds every age (ct_2, ct_3) and takes its name next")
        op.drop_column("hero", "age")  # ix_hero_age and ck_hero_age_range go with it
        lint_ignore("renaming-column", "no release names age_big: each reads and writes age throughout")
        op.alter_column("hero", "age_big", new_column_name="age")
        lint_ignore("renaming-object", "no query names an index or a constraint; only their columns")
        op.execute("ALTER INDEX ix_hero_age_big RENAME TO ix_hero_age")
        lint_ignore("renaming-object", "the CHECK keeps its reference name, ck_hero_age_range")
        op.execute("ALTER TABLE hero RENAME CONSTRAINT ck_hero_age_big_range TO ck_hero_age_range")
        return
    op.drop_index(op.f("ix_hero_age"), table_name="hero")
    op.drop_index(op.f("ix_hero_age_big"), table_name="hero")
    with op.batch_alter_table("hero") as batch:
        batch.drop_constraint(op.f("ck_hero_age_range"), type_="check")
        batch.drop_constraint(op.f("ck_hero_age_big_range"), type_="check")
        batch.drop_column("age")
        batch.alter_column("age_big", new_column_name="age", existing_type=sa.BigInteger())
        batch.create_check_constraint(op.f("ck_hero_age_range"), f"age {RANGE}")
    op.create_index(op.f("ix_hero_age"), "hero", ["age"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_hero_age"), table_name="hero")
    with op.batch_alter_table("hero") as batch:
        batch.drop_constraint(op.f("ck_hero_age_range"), type_="check")
        batch.alter_column("age", new_column_name="age_big", existing_type=sa.BigInteger())
    with op.batch_alter_table("hero") as batch:  # apart: SQLite's batch would take the new age for the old
        batch.add_column(sa.Column("age", sa.Integer(), nullable=True))
    op.execute("UPDATE hero SET age = age_big")
    with op.batch_alter_table("hero") as batch:
        batch.create_check_constraint(op.f("ck_hero_age_range"), f"age {RANGE}")
        batch.create_check_constraint(op.f("ck_hero_age_big_range"), f"age_big {RANGE}")
    op.create_index(op.f("ix_hero_age"), "hero", ["age"], unique=False)
    op.create_index(op.f("ix_hero_age_big"), "hero", ["age_big"], unique=False)
    dual_write(create=True)
