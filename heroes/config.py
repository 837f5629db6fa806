"""Settings: one pydantic-settings class, read from the environment and from `.env`."""

from functools import lru_cache

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./heroes.db"


def normalize_database_url(url: str) -> str:
    """Accept the libpq spellings people paste (`postgres://`, `postgresql://`) and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Settings(BaseSettings):
    """Every knob of the lab. Environment variables win over `.env`; all but DATABASE_URL start HEROES_."""

    model_config = SettingsConfigDict(env_prefix="HEROES_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias=AliasChoices("DATABASE_URL", "HEROES_DATABASE_URL"),
        description="SQLAlchemy URL: sqlite:///path.db or postgresql+psycopg://user:pw@host/db",
    )
    pool_size: int = Field(default=5, ge=1)
    max_overflow: int = Field(default=5, ge=0)
    pool_timeout: float = Field(default=5.0, gt=0, description="seconds to wait for a pooled connection")
    pool_recycle: int = Field(default=1800, description="seconds before a pooled connection is replaced")
    statement_timeout_ms: int = Field(default=15_000, ge=0, description="PostgreSQL statement_timeout")
    lock_timeout_ms: int = Field(
        default=2_000, ge=0, description="PostgreSQL lock_timeout: how long a statement waits for a row lock"
    )
    sqlite_busy_timeout_ms: int = Field(default=5_000, ge=0)
    evidence: bool = Field(default=True, description="X-Query-Count and Server-Timing on every response")
    echo_sql: bool = Field(default=False, description="log each statement (text only) with its request")
    workshop_dir: str = Field(default="workshop", description="where `heroes workshop` writes the exercises")

    @field_validator("database_url")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return normalize_database_url(value)


@lru_cache
def get_settings() -> Settings:
    return Settings()
