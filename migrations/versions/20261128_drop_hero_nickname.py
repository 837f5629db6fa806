"""hero.nickname, dropped: the last step of its deprecation cycle

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28

The drop-column lesson. The cycle: (1) stop reading: the Hero model lost its `nickname` attribute,
so no SELECT names the column (with an ORM every mapped column is read, used or not); (2) stop
writing: the same release inserts heroes without it, which works because the column is nullable
(were it NOT NULL without a default, a revision making it nullable would have to ship first);
(3) once no running code maps the column any more, this revision drops it. Dropped before (1) and
(2) are deployed everywhere, every query of the old code fails: "column hero.nickname does not exist".

Downgrade: adds hero.nickname back, nullable and empty. It cannot bring back a single nickname:
the values went with the column. Export them first if anyone may ever need them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # AutoString: how SQLModel's `str` fields render
from alembic import op

from heroes.migrate import lint_ignore

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    lint_ignore(
        "ban-drop-column",
        "the deprecation cycle's last step: the running release neither reads nor writes it",
    )
    op.drop_column("hero", "nickname")  # the values go with it


def downgrade() -> None:
    op.add_column("hero", sa.Column("nickname", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
