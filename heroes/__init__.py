"""heroes: a hands-on lab of the database pitfalls of SQLModel/SQLAlchemy behind FastAPI, and their fixes."""

__version__ = "0.1.0"
