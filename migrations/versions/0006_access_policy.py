"""The access policy: admin-signed documents, and an index of the newest one's principals and rules.

Revision ID: 0006
Revises: 0005
Create Date: 2027-02-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "access_policies",
        sa.Column("serial", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("document", sa.LargeBinary, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "access_principals",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("signing_fingerprint", sa.String(64), nullable=False),
        sa.Column("expires", sa.String(10)),
        sa.Column("removed_at", TZ),
    )
    op.create_table(
        "access_grants",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("principal_id", sa.String(32), nullable=False),
        sa.Column("pattern", sa.String(4096), nullable=False),
        sa.Column("capabilities", sa.String(255), nullable=False),
        sa.Column("deny", sa.Boolean, nullable=False),
    )
    op.create_index("ix_access_grants_principal", "access_grants", ["principal_id"])


def downgrade() -> None:
    op.drop_index("ix_access_grants_principal", "access_grants")
    op.drop_table("access_grants")
    op.drop_table("access_principals")
    op.drop_table("access_policies")
