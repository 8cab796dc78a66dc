"""Initial catalog: artifacts, versions, files, metadata, lineage, tags, packs, chunk index.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "vault_info",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "keyrings",
        sa.Column("ring_id", sa.String(32), primary_key=True),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("namespace", name="uq_keyrings_namespace"),
    )
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("name", name="uq_artifacts_name"),
    )
    op.create_table(
        "versions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("artifact_id", sa.Integer, sa.ForeignKey("artifacts.id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("root", sa.String(8), nullable=False),
        sa.Column("ring_id", sa.String(32), sa.ForeignKey("keyrings.ring_id"), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("artifact_id", "number", name="uq_versions_artifact_number"),
    )
    op.create_index("ix_versions_digest", "versions", ["digest"])
    op.create_table(
        "version_files",
        sa.Column("version_id", sa.String(32), sa.ForeignKey("versions.id"), primary_key=True),
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mode", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )
    op.create_table(
        "version_metadata",
        sa.Column("version_id", sa.String(32), sa.ForeignKey("versions.id"), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "lineage",
        sa.Column("version_id", sa.String(32), sa.ForeignKey("versions.id"), primary_key=True),
        sa.Column("parent_id", sa.String(32), sa.ForeignKey("versions.id"), primary_key=True),
    )
    op.create_table(
        "tags",
        sa.Column("artifact_id", sa.Integer, sa.ForeignKey("artifacts.id"), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version_id", sa.String(32), sa.ForeignKey("versions.id"), nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "packs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("ring_id", sa.String(32), sa.ForeignKey("keyrings.ring_id"), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("chunk_count", sa.Integer, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "chunks",
        sa.Column("ring_id", sa.String(32), primary_key=True),
        sa.Column("chunk_id", sa.LargeBinary(32), primary_key=True),
        sa.Column("pack_id", sa.String(32), sa.ForeignKey("packs.id"), nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("length", sa.Integer, nullable=False),
    )
    op.create_index("ix_chunks_pack", "chunks", ["pack_id"])


def downgrade() -> None:
    for table in ("chunks", "packs", "tags", "lineage", "version_metadata", "version_files", "versions",
                  "artifacts", "keyrings", "vault_info"):
        op.drop_table(table)
