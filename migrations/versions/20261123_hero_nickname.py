"""hero.nickname: a column from the lab's history, retired again by 0007

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

The lab's own history: heroes once carried an optional nickname that no response ever returned.
The lab retired it through the deprecation cycle (the drop-column lesson): a release that stopped
reading and writing it (the Hero model lost the attribute), then 0007 dropped it. It is nullable, so
code that does not know it can still insert heroes.

Downgrade: drops hero.nickname, and every nickname with it; nothing can bring them back.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # AutoString: how SQLModel's `str` fields render
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("hero", sa.Column("nickname", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))


def downgrade() -> None:
    op.drop_column("hero", "nickname")  # SQLite 3.35+ drops a plain column in place, as PostgreSQL does
