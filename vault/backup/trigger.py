"""What makes ``backup run --due`` run: a crontab line, or a systemd service and timer.

The schedules themselves live in the catalog; the host only needs a trigger every few minutes, and
``run --due`` decides what is due (so the trigger's period is not a schedule's period, and a trigger
that fires twice, or late, changes nothing). :func:`trigger_units` renders the same command line
for both, quoted for each:

- cron runs the line through ``/bin/sh``, so arguments are shell-quoted, and ``%`` (a newline in a
  crontab) is escaped as ``\\%``;
- systemd unit files expand ``%`` specifiers and ``$`` variables, so those are doubled, and an
  argument with spaces, quotes or backslashes is double-quoted with C-style escapes. The timer is
  ``Persistent=true``: a run missed while the host was off fires at boot.

The command names the executable by absolute path (cron's ``PATH`` is ``/usr/bin:/bin``) and carries
no secret: ``run --due`` needs no passphrase.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

UNIT_NAME = "mlvault-backup"
_SYSTEMD_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./$-]+$")


@dataclass(frozen=True)
class TriggerUnits:
    """The crontab line and the systemd units that run ``command`` every ``every_minutes``."""

    crontab: str
    service: str
    timer: str

    def render(self) -> str:
        """Everything ``mlvault backup cron-line`` prints, with where each part goes."""
        return (
            "# crontab (crontab -e): runs the backup schedules that are due\n"
            f"{self.crontab}\n"
            "\n"
            f"# or systemd: /etc/systemd/system/{UNIT_NAME}.service\n"
            f"{self.service}"
            "\n"
            f"# /etc/systemd/system/{UNIT_NAME}.timer\n"
            f"{self.timer}"
            "\n"
            f"# then: systemctl daemon-reload && systemctl enable --now {UNIT_NAME}.timer\n"
        )


def trigger_units(command: Sequence[str], every_minutes: int = 5) -> TriggerUnits:
    """The crontab line and systemd units for ``command`` (argv, program first)."""
    if not command:
        raise ValueError("an empty command")
    if not 1 <= every_minutes <= 59:
        raise ValueError("the trigger runs every 1..59 minutes")
    every = "*" if every_minutes == 1 else f"*/{every_minutes}"
    crontab = f"{every} * * * * " + " ".join(shlex.quote(arg) for arg in command).replace("%", "\\%")
    service = (
        "[Unit]\n"
        "Description=mlvault: run the backup schedules that are due\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"ExecStart={' '.join(systemd_quote(arg) for arg in command)}\n"
    )
    timer = (
        "[Unit]\n"
        f"Description=mlvault: run the backup schedules that are due, every {every_minutes} min\n"
        "\n"
        "[Timer]\n"
        f"OnCalendar=*:0/{every_minutes}\n"
        "Persistent=true\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return TriggerUnits(crontab, service, timer)


def systemd_quote(arg: str) -> str:
    """One ``ExecStart=`` argument: specifiers and variables escaped, quoted when needed."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if arg and _SYSTEMD_PLAIN.match(arg):
        return escaped
    quoted = escaped.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{quoted}"'
