"""The catalog schema, as SQLAlchemy Core tables (the migrations import only this).

The catalog is an index over what storage holds: it maps names to versions, versions to
manifests, chunk ids to pack locations. Everything in it except tags and metadata could
be rebuilt from storage (manifests and pack trailers); nothing in it is secret.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

vault_info = Table(
    "vault_info",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

keyrings = Table(
    "keyrings",
    metadata,
    Column("ring_id", String(32), primary_key=True),
    Column("namespace", String(255), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(512), nullable=False, unique=True),
    Column("namespace", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

versions = Table(
    "versions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("artifact_id", Integer, ForeignKey("artifacts.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("root", String(8), nullable=False),
    Column("ring_id", String(32), ForeignKey("keyrings.ring_id"), nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("artifact_id", "number", name="uq_versions_artifact_number"),
    Index("ix_versions_digest", "digest"),
)

version_files = Table(
    "version_files",
    metadata,
    Column("version_id", String(32), ForeignKey("versions.id"), primary_key=True),
    Column("path", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("mode", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
)

version_metadata = Table(
    "version_metadata",
    metadata,
    Column("version_id", String(32), ForeignKey("versions.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

lineage = Table(
    "lineage",
    metadata,
    Column("version_id", String(32), ForeignKey("versions.id"), primary_key=True),
    Column("parent_id", String(32), ForeignKey("versions.id"), primary_key=True),
)

tags = Table(
    "tags",
    metadata,
    Column("artifact_id", Integer, ForeignKey("artifacts.id"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("version_id", String(32), ForeignKey("versions.id"), nullable=False),
    Column("updated_by", String(255), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

packs = Table(
    "packs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("ring_id", String(32), ForeignKey("keyrings.ring_id"), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("chunk_count", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

chunks = Table(
    "chunks",
    metadata,
    Column("ring_id", String(32), primary_key=True),
    Column("chunk_id", LargeBinary(32), primary_key=True),
    Column("pack_id", String(32), ForeignKey("packs.id"), nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("length", Integer, nullable=False),
    Index("ix_chunks_pack", "pack_id"),
)

# Signatures and the trust policy (migration 0002). Neither is trusted because it is here: a bundle
# counts only if it verifies under a key of the admin-signed policy, and the policy document counts
# only if a client-pinned admin key signed it. ``signer_fingerprint`` is a lookup aid, never evidence.
signatures = Table(
    "signatures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", String(32), ForeignKey("versions.id"), nullable=False),
    Column("signer_fingerprint", String(64), nullable=False),
    Column("bundle", Text, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_signatures_version_id", "version_id"),
)

trust_policies = Table(
    "trust_policies",
    metadata,
    Column("serial", Integer, primary_key=True, autoincrement=False),
    Column("document", LargeBinary, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Key slots and key events (migration 0003). The slots themselves live in storage; these rows hold
# what storage must not (labels, who made a slot and when, when it last opened the vault) and the
# history of slot additions and removals that the audit log will take over. ``ring`` is a keyring
# id or "owner". Nothing here grants access: a row without its slot opens nothing.
key_slots = Table(
    "key_slots",
    metadata,
    Column("slot_id", String(32), primary_key=True),
    Column("ring", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("label", String(255)),
    Column("recipient_public", String(64)),  # x25519 slots: the raw public key (hex), for rewrapping
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("last_used_at", DateTime(timezone=True)),
)

key_events = Table(
    "key_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("action", String(16), nullable=False),
    Column("slot_id", String(32), nullable=False),
    Column("ring", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("label", String(255)),
)

# Backup schedules, their leases and their run history (migration 0004). A schedule names a target
# and a policy; deleting it deletes its lease and history rows, never a backup at the target. Times
# are UTC. ``include`` is a JSON list of access patterns (empty: everything). ``enabled_at`` is when
# the schedule was saved or last enabled: it is not overdue for slots before that.
backup_schedules = Table(
    "backup_schedules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("cron", String(255), nullable=False),
    Column("tz", String(64), nullable=False),
    Column("target_url", Text, nullable=False),
    Column("target_endpoint_url", Text),
    Column("target_profile", String(255)),
    Column("target_region", String(64)),
    Column("include", Text, nullable=False),
    Column("keep_last", Integer, nullable=False),
    Column("keep_hourly", Integer, nullable=False),
    Column("keep_daily", Integer, nullable=False),
    Column("keep_weekly", Integer, nullable=False),
    Column("keep_monthly", Integer, nullable=False),
    Column("keep_yearly", Integer, nullable=False),
    Column("keep_within_seconds", BigInteger),
    Column("lock_mode", String(16)),
    Column("lock_retain_days", Integer),
    Column("catch_up", String(8), nullable=False),
    Column("max_runtime_seconds", BigInteger),
    Column("enabled", Boolean, nullable=False),
    Column("enabled_at", DateTime(timezone=True), nullable=False),
    Column("last_scheduled", DateTime(timezone=True)),
    Column("last_started", DateTime(timezone=True)),
    Column("last_success", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(255), nullable=False),
)

backup_leases = Table(
    "backup_leases",
    metadata,
    Column("schedule_id", Integer, ForeignKey("backup_schedules.id", ondelete="CASCADE"), primary_key=True),
    Column("owner_host", String(255), nullable=False),
    Column("owner_pid", Integer, nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("ttl_seconds", Float, nullable=False),
)

backup_runs = Table(
    "backup_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("schedule_id", Integer, ForeignKey("backup_schedules.id", ondelete="CASCADE"), nullable=False),
    Column("slot", DateTime(timezone=True)),  # the cron slot it ran for; NULL for `backup run NAME`
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("outcome", String(16), nullable=False),
    Column("objects_copied", BigInteger, nullable=False),
    Column("bytes_copied", BigInteger, nullable=False),
    Column("error", Text),
    Index("ix_backup_runs_schedule", "schedule_id", "id"),
)

# The audit log (migration 0005): one hash-chained row per operation (vault.audit.chain). ``seq``
# is allocated by the appender under a lock (vault.catalog.audit), never by the database.
# ``details`` is the row's details as JSON; ``prev_hash`` and ``hash`` are hex SHA-256.
# ``key_event`` names the key_events row a row was imported from (outside the hash; it only
# stops the same event being imported twice).
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("principal", Text, nullable=False),
    Column("action", String(32), nullable=False),
    Column("target", Text, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("key_event", Integer, unique=True),
    Index("ix_audit_log_at", "at"),
)

# The access policy (migration 0006). ``access_policies`` holds the admin-signed documents, one per
# serial, append-only; clients decide only from a document that a pinned admin key signed. The two
# other tables are an index of the newest document, rewritten with it in one transaction, for SQL
# joins (audit, reports): a row added here by hand grants nothing.
access_policies = Table(
    "access_policies",
    metadata,
    Column("serial", Integer, primary_key=True, autoincrement=False),
    Column("document", LargeBinary, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

access_principals = Table(
    "access_principals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("signing_fingerprint", String(64), nullable=False),
    Column("expires", String(10)),
    Column("removed_at", DateTime(timezone=True)),
)

access_grants = Table(
    "access_grants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("principal_id", String(32), nullable=False),
    Column("pattern", String(4096), nullable=False),
    Column("capabilities", String(255), nullable=False),
    Column("deny", Boolean, nullable=False),
    Index("ix_access_grants_principal", "principal_id"),
)

# Provenance records (migration 0007): an index of the signed records in storage
# (``records/…``, vault.access.provenance), one row per record, by its SHA-256. Readers never decide
# from these rows; they verify the stored objects. The index finds a principal's records when a
# policy change must keep them valid, and lists records without walking storage.
provenance_records = Table(
    "provenance_records",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("artifact", String(512), nullable=False),
    Column("version_id", String(32), nullable=False),
    Column("tag", String(255)),
    Column("seq", BigInteger),
    Column("principal_id", String(32)),
    Column("storage_key", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_provenance_records_principal", "principal_id"),
    Index("ix_provenance_records_version", "version_id"),
)
