"""Team and Hero: each class is both a table and an API schema (SQLModel's tutorial family).

    XBase          the fields a client may send and see
    X(table=True)  the table: XBase plus id and the private or server-managed columns
    XCreate        what POST accepts         XPublic    what every response returns
    XUpdate        what PATCH accepts        XPublicWithY  XPublic with its related rows

`secret_name` lives only in Hero, HeroCreate and HeroUpdate: it is written, never returned
(the SQLModel tutorial puts it in HeroBase, so every HeroPublic would leak it).

Bounds hold on both engines because they are checked before the database sees a value:
SQLite does not enforce VARCHAR lengths, accepts NUL bytes and 64-bit integers; PostgreSQL
rejects NUL bytes and integers beyond 2**31-1 with errors that would otherwise be 500s.
"""

import unicodedata
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, StrictInt, field_validator
from sqlalchemy import CheckConstraint, DateTime, UniqueConstraint, text
from sqlmodel import Field, Relationship, SQLModel

# Explicit constraint names: migrations can name what they alter, errors can say which field.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION

INT32_MAX = 2**31 - 1  # PostgreSQL INTEGER; SQLite would store far more
NAME_MAX = 100
AGE_MAX = 10_000


def _printable(value: str) -> str:
    """Reject control characters (NUL included) and lone surrogates, which neither engine stores safely."""
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs"):
            kind = "a lone surrogate" if unicodedata.category(char) == "Cs" else "a control character"
            raise ValueError(f"must not contain {kind} (U+{ord(char):04X})")
    return value


class _PrintableInSchema:
    """The same rule in the OpenAPI schema, as a pattern (the validator gives the clearer message)."""

    PATTERN = r"^[^\x00-\x1f\x7f-\x9f\ud800-\udfff]*$"

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler):
        return {**handler(core_schema), "pattern": cls.PATTERN}


Text = Annotated[str, AfterValidator(_printable), _PrintableInSchema]
"""A string of printable characters; pair it with Field(min_length=1, max_length=NAME_MAX)."""


def _not_null(value: object) -> object:
    if value is None:
        raise ValueError("may be left out, but not set to null")
    return value


# ---- Team ---------------------------------------------------------------------------------------


class TeamBase(SQLModel):
    name: Text = Field(min_length=1, max_length=NAME_MAX)
    headquarters: Text = Field(min_length=1, max_length=NAME_MAX)


class Team(TeamBase, table=True):
    __table_args__ = (
        UniqueConstraint("name"),  # uq_team_name: the database decides what "duplicate" means
        CheckConstraint("length(name) BETWEEN 1 AND 100", name="name_length"),
    )

    id: int | None = Field(default=None, primary_key=True)
    heroes: list["Hero"] = Relationship(
        back_populates="team",
        # "all": deleting a team never sets its heroes' team_id to NULL; the foreign key refuses instead
        sa_relationship_kwargs={"order_by": "Hero.id", "passive_deletes": "all"},
    )


class TeamCreate(TeamBase):
    pass


class TeamPublic(TeamBase):
    id: int


class TeamUpdate(SQLModel):
    # a string that may be left out (default None) but never sent as null: the schema says so too
    name: Text = Field(default=None, min_length=1, max_length=NAME_MAX)
    headquarters: Text = Field(default=None, min_length=1, max_length=NAME_MAX)

    _no_nulls = field_validator("name", "headquarters", mode="before")(_not_null)


# ---- Hero ---------------------------------------------------------------------------------------


class HeroBase(SQLModel):
    name: Text = Field(min_length=1, max_length=NAME_MAX, index=True)
    age: StrictInt | None = Field(default=None, ge=0, le=AGE_MAX, index=True)  # strict: `true` is not 1
    team_id: StrictInt | None = Field(default=None, ge=1, le=INT32_MAX, foreign_key="team.id", index=True)


class Hero(HeroBase, table=True):
    __table_args__ = (
        CheckConstraint("age BETWEEN 0 AND 10000", name="age_range"),
        CheckConstraint("length(name) BETWEEN 1 AND 100", name="name_length"),
    )

    id: int | None = Field(default=None, primary_key=True)
    secret_name: str = Field(max_length=NAME_MAX)  # private: never in a response model
    version: int = Field(default=1, ge=1)  # optimistic locking: sent as the ETag, checked by If-Match
    created_at: datetime | None = Field(  # server-managed (migrations 0003-0006): never sent, never returned
        default=None,
        sa_type=DateTime(timezone=True),
        sa_column_kwargs={"server_default": text("CURRENT_TIMESTAMP")},
        nullable=False,
        index=True,
    )
    team: Team | None = Relationship(back_populates="heroes")


class HeroCreate(HeroBase):
    secret_name: Text = Field(min_length=1, max_length=NAME_MAX)


class HeroPublic(HeroBase):
    id: int
    version: int


class HeroUpdate(SQLModel):
    name: Text = Field(default=None, min_length=1, max_length=NAME_MAX)
    secret_name: Text = Field(default=None, min_length=1, max_length=NAME_MAX)
    age: StrictInt | None = Field(default=None, ge=0, le=AGE_MAX)  # null clears the age
    team_id: StrictInt | None = Field(default=None, ge=1, le=INT32_MAX)  # null leaves the team

    _no_nulls = field_validator("name", "secret_name", mode="before")(_not_null)


# ---- with their relations -------------------------------------------------------------------------


class HeroPublicWithTeam(HeroPublic):
    team: TeamPublic | None = None


class TeamPublicWithHeroes(TeamPublic):
    heroes: list[HeroPublic] = []
