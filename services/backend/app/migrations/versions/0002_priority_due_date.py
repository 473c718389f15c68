"""Priority and due date on todos; index for the newest-first listing per owner.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows get the default priority; ADD COLUMN keeps them in place.
    op.add_column(
        "todos",
        sa.Column("priority", sa.String(6), nullable=False, server_default="medium"),
    )
    op.add_column("todos", sa.Column("due_date", sa.Date(), nullable=True))
    # The listing filters by owner and sorts by creation time: one index serves both,
    # and it makes the owner-only index redundant.
    op.create_index("ix_todos_owner_created", "todos", ["owner_id", "created_at"])
    op.drop_index("ix_todos_owner_id", table_name="todos")


def downgrade() -> None:
    op.create_index("ix_todos_owner_id", "todos", ["owner_id"])
    op.drop_index("ix_todos_owner_created", table_name="todos")
    with op.batch_alter_table("todos") as batch:
        batch.drop_column("due_date")
        batch.drop_column("priority")
