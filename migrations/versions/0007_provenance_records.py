"""Provenance records: an index of the signed push, attest and tag records kept in storage.

Revision ID: 0007
Revises: 0006
Create Date: 2027-02-09
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "provenance_records",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("artifact", sa.String(512), nullable=False),
        sa.Column("version_id", sa.String(32), nullable=False),
        sa.Column("tag", sa.String(255)),
        sa.Column("seq", sa.BigInteger),
        sa.Column("principal_id", sa.String(32)),
        sa.Column("storage_key", sa.String(255), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_provenance_records_principal", "provenance_records", ["principal_id"])
    op.create_index("ix_provenance_records_version", "provenance_records", ["version_id"])


def downgrade() -> None:
    op.drop_index("ix_provenance_records_version", "provenance_records")
    op.drop_index("ix_provenance_records_principal", "provenance_records")
    op.drop_table("provenance_records")
