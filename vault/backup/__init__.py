"""Scheduled backups: the pure, key-independent foundations.

Each module holds one idea and takes time as a parameter, so tests move time instead of sleeping:

- :mod:`vault.backup.retention` — restic ``forget`` semantics as a pure function.
- :mod:`vault.backup.schedule` — cron expressions in an IANA time zone (cronsim), next runs, catch-up.
- :mod:`vault.backup.lease` — the one-run-at-a-time lease rules and the ``LeaseStore`` interface.
- :mod:`vault.backup.metrics` — Prometheus textfile metrics of the last runs.
- :mod:`vault.backup.ping` — healthchecks-style pings that never fail or hang a backup.
"""
