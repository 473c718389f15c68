"""Database tables. Their shape must match the newest Alembic revision in app/migrations
(tests/test_migrations.py compares the two), since migrations, not these classes,
create the schema."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def utcnow() -> dt.datetime:
    """Current time in UTC (SQLModel stores it without offset and reads it back as UTC)."""
    return dt.datetime.now(dt.UTC)


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (sa.UniqueConstraint("email", name="uq_users_email"),)

    id: int | None = Field(default=None, primary_key=True)
    # Stored lower-cased so that "Ann@x.org" and "ann@x.org" are one account.
    email: str = Field(sa_column=sa.Column(sa.String(320), nullable=False))
    password_hash: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    created_at: dt.datetime = Field(default_factory=utcnow, nullable=False)


class Todo(SQLModel, table=True):
    __tablename__ = "todos"
    __table_args__ = (sa.Index("ix_todos_owner_created", "owner_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        )
    )
    title: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    description: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    due_date: dt.date | None = Field(default=None, nullable=True)
    priority: str = Field(
        default="medium",
        sa_column=sa.Column(sa.String(6), nullable=False, server_default="medium"),
    )
    done: bool = Field(default=False, nullable=False)
    created_at: dt.datetime = Field(default_factory=utcnow, nullable=False)
    updated_at: dt.datetime = Field(default_factory=utcnow, nullable=False)
