"""hero.team_id -> team.id, validated: every row checked, while writers go on

Revision ID: fk_3
Revises: fk_2
Create Date: 2026-12-03

The add-foreign-key lesson. ALTER TABLE ... VALIDATE CONSTRAINT reads every hero, as a plain ADD
FOREIGN KEY would, but under SHARE UPDATE EXCLUSIVE on hero and ROW SHARE on team: INSERT, UPDATE and
DELETE on both tables go on during the scan (other schema changes and VACUUM of hero wait). It must
run in its own transaction, not fk_1's: the SHARE ROW EXCLUSIVE lock fk_1 took is held until its
transaction commits, and a VALIDATE in that transaction would scan under it (the lesson's Myth). Each
revision here runs in its own transaction (migrations/env.py: transaction_per_migration). On SQLite
(no NOT VALID, no VALIDATE) this is where the constraint is added: batch mode copies hero into a new
table with the foreign key, every row checked as it goes (PRAGMA foreign_keys=ON), one writer at a
time there anyway.

Downgrade: PostgreSQL: nothing to undo (a validated constraint cannot be marked NOT VALID again; fk_1's
downgrade drops it). SQLite: drops the constraint (a table copy). Brings back everything: no data changes.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "fk_3"
down_revision: str | None = "fk_2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEY = "fk_hero_team_id_legacy"


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        with op.batch_alter_table("hero") as batch:  # a copy of the table: every row checked
            batch.create_foreign_key(FOREIGN_KEY, "team", ["team_id"], ["id"])
        return
    op.execute(f"ALTER TABLE hero VALIDATE CONSTRAINT {FOREIGN_KEY}")  # a scan; writers are not blocked


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        with op.batch_alter_table("hero") as batch:
            batch.drop_constraint(FOREIGN_KEY, type_="foreignkey")
