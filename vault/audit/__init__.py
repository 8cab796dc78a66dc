"""The audit log: a tamper-evident hash chain of operation rows, and anomaly detection over it.

:mod:`vault.audit.chain` defines the canonical encoding of a row, the chain hash and the
verification walk; :mod:`vault.audit.checkpoint` the checkpoint object written to storage;
:mod:`vault.audit.events` the names rows use for actions and outcomes; and
:mod:`vault.audit.anomalies` per-principal baselines and the flags raised against them. All are
pure: rows, checkpoints and the current time are handed in, never read.
"""
