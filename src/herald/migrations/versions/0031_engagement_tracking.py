"""Reserved for opt-in engagement tracking (the deliverability issue): the change that builds it
fills this migration in. Until then it changes nothing.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-05
"""

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
