"""Backup schedules, their leases (one run at a time) and their run history.

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-20
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "backup_schedules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("cron", sa.String(255), nullable=False),
        sa.Column("tz", sa.String(64), nullable=False),
        sa.Column("target_url", sa.Text, nullable=False),
        sa.Column("target_endpoint_url", sa.Text),
        sa.Column("target_profile", sa.String(255)),
        sa.Column("target_region", sa.String(64)),
        sa.Column("include", sa.Text, nullable=False),
        sa.Column("keep_last", sa.Integer, nullable=False),
        sa.Column("keep_hourly", sa.Integer, nullable=False),
        sa.Column("keep_daily", sa.Integer, nullable=False),
        sa.Column("keep_weekly", sa.Integer, nullable=False),
        sa.Column("keep_monthly", sa.Integer, nullable=False),
        sa.Column("keep_yearly", sa.Integer, nullable=False),
        sa.Column("keep_within_seconds", sa.BigInteger),
        sa.Column("lock_mode", sa.String(16)),
        sa.Column("lock_retain_days", sa.Integer),
        sa.Column("catch_up", sa.String(8), nullable=False),
        sa.Column("max_runtime_seconds", sa.BigInteger),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("enabled_at", TZ, nullable=False),
        sa.Column("last_scheduled", TZ),
        sa.Column("last_started", TZ),
        sa.Column("last_success", TZ),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.UniqueConstraint("name", name="uq_backup_schedules_name"),
    )
    op.create_table(
        "backup_leases",
        sa.Column(
            "schedule_id",
            sa.Integer,
            sa.ForeignKey("backup_schedules.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("owner_host", sa.String(255), nullable=False),
        sa.Column("owner_pid", sa.Integer, nullable=False),
        sa.Column("heartbeat_at", TZ, nullable=False),
        sa.Column("ttl_seconds", sa.Float, nullable=False),
    )
    op.create_table(
        "backup_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "schedule_id",
            sa.Integer,
            sa.ForeignKey("backup_schedules.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("slot", TZ),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("finished_at", TZ),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("objects_copied", sa.BigInteger, nullable=False),
        sa.Column("bytes_copied", sa.BigInteger, nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_backup_runs_schedule", "backup_runs", ["schedule_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_backup_runs_schedule", table_name="backup_runs")
    op.drop_table("backup_runs")
    op.drop_table("backup_leases")
    op.drop_table("backup_schedules")
