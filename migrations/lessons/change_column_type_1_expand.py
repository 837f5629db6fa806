"""change-column-type, expand: hero.age_big BIGINT beside hero.age, kept in step by a trigger

Revision ID: ct_1
Revises:
Create Date: 2026-12-03

The change-column-type lesson's first step instead of ALTER COLUMN age TYPE BIGINT (which rewrites
hero under ACCESS EXCLUSIVE). A nullable column without a default: no rewrite, an instant catalog change.
Its CHECK is added NOT VALID (new rows checked, no scan); ct_3 validates it. A trigger is the dual-write:
every INSERT, and every UPDATE of age, copies age into age_big, so the running release (which writes
age only) needs no change while ct_2 backfills the rows already there.

Downgrade: drops the trigger, the CHECK and hero.age_big. Brings back everything: hero.age was never
touched; age_big only held copies.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from heroes.migrate import lint_ignore

revision: str = "ct_1"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("change-column-type",)
depends_on: str | Sequence[str] | None = None

POSTGRESQL_TRIGGER = [
    """CREATE FUNCTION hero_age_big() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.age_big := NEW.age;
    RETURN NEW;
END $$""",
    "CREATE TRIGGER hero_age_big BEFORE INSERT OR UPDATE OF age ON hero "
    "FOR EACH ROW EXECUTE FUNCTION hero_age_big()",
]
SQLITE_TRIGGER = [
    "CREATE TRIGGER hero_age_big_insert AFTER INSERT ON hero "
    "BEGIN UPDATE hero SET age_big = NEW.age WHERE id = NEW.id; END",
    "CREATE TRIGGER hero_age_big_update AFTER UPDATE OF age ON hero "
    "BEGIN UPDATE hero SET age_big = NEW.age WHERE id = NEW.id; END",
]


def dual_write(create: bool) -> None:
    """The trigger that copies age into age_big (SQLite: after the write; PostgreSQL: before it)."""
    if op.get_context().dialect.name == "postgresql":
        statements = (
            POSTGRESQL_TRIGGER
            if create
            else [
                "DROP TRIGGER hero_age_big ON hero",
                "DROP FUNCTION hero_age_big()",
            ]
        )
    else:
        statements = (
            SQLITE_TRIGGER
            if create
            else [
                "DROP TRIGGER hero_age_big_insert",
                "DROP TRIGGER hero_age_big_update",
            ]
        )
    for statement in statements:
        if statement.startswith("DROP FUNCTION"):
            lint_ignore("ban-drop-function", "the dual-write trigger's own function: nothing else calls it")
        op.execute(statement)


def upgrade() -> None:
    with op.batch_alter_table("hero") as batch:  # SQLite: a copy of hero with the column and its CHECK
        batch.add_column(sa.Column("age_big", sa.BigInteger(), nullable=True))
        batch.create_check_constraint(
            op.f("ck_hero_age_big_range"), "age_big BETWEEN 0 AND 10000", postgresql_not_valid=True
        )
    dual_write(create=True)  # after the batch: SQLite's copy would not keep a trigger made before it


def downgrade() -> None:
    dual_write(create=False)
    with op.batch_alter_table("hero") as batch:
        batch.drop_constraint(op.f("ck_hero_age_big_range"), type_="check")
        batch.drop_column("age_big")
