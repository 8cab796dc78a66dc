"""Argon2id passphrase stretching with parameters that travel with the data.

The defaults are RFC 9106's second recommended ("low-memory") profile: t=3, m=64 MiB, p=4.
Parameters are always passed explicitly; tests pass cheap ones. On unwrap the stored
parameters are checked against caps so that a hostile key slot cannot make us allocate
unbounded memory or spin for hours.

Within the caps, cost is bounded once more relative to what this client creates by default
(:data:`RFC9106_LOW_MEMORY`): parameters that ask for more than :data:`SLOW_FACTOR` times its
memory, or its work (time cost × memory), are "slow". ``init`` refuses to create them and
unlock refuses to run them unless the user explicitly allows slow KDFs, and one unlock spends
at most :data:`UNLOCK_BUDGET` of work over all the slots it tries. A planted slot can then cost
a few seconds, never 16 slots × 1 GiB.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw

from vault.errors import ConfigurationError

# Caps on what a stored slot may ask for: generous for a paranoid passphrase (16 passes
# over 1 GiB is ~10 s on a laptop), but a hostile slot cannot ask for more.
MAX_TIME_COST = 16
MAX_MEMORY_KIB = 1024 * 1024  # 1 GiB
MAX_PARALLELISM = 16
SALT_SIZE = 16
SLOW_FACTOR = 4  # more than this many times the default's memory or work is "slow"
UNLOCK_BUDGET_FACTOR = 16  # one unlock runs at most this many default-cost KDFs' worth of work


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost parameters."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 4

    def check(self) -> KdfParams:
        """Return self if within sane bounds, else raise ConfigurationError."""
        if not 1 <= self.time_cost <= MAX_TIME_COST:
            raise ConfigurationError(f"Argon2 time cost {self.time_cost} outside 1..{MAX_TIME_COST}")
        if not 1 <= self.parallelism <= MAX_PARALLELISM:
            raise ConfigurationError(f"Argon2 parallelism {self.parallelism} outside 1..{MAX_PARALLELISM}")
        if not 8 * self.parallelism <= self.memory_kib <= MAX_MEMORY_KIB:
            raise ConfigurationError(
                f"Argon2 memory {self.memory_kib} KiB outside {8 * self.parallelism}..{MAX_MEMORY_KIB} KiB"
            )
        return self

    @property
    def is_weak(self) -> bool:
        """Weaker than the RFC 9106 low-memory profile."""
        return self.memory_kib < 64 * 1024 or self.time_cost < 3

    @property
    def work(self) -> int:
        """Argon2 work in KiB-passes (time cost × memory): what one run costs in CPU time."""
        return self.time_cost * self.memory_kib

    @property
    def is_slow(self) -> bool:
        """More than :data:`SLOW_FACTOR` × the default's memory or work."""
        return (
            self.memory_kib > SLOW_FACTOR * RFC9106_LOW_MEMORY.memory_kib
            or self.work > SLOW_FACTOR * RFC9106_LOW_MEMORY.work
        )

    def describe(self) -> str:
        """``t=3, m=64 MiB, p=4``, for messages."""
        memory = f"{self.memory_kib // 1024} MiB" if self.memory_kib % 1024 == 0 else f"{self.memory_kib} KiB"
        return f"t={self.time_cost}, m={memory}, p={self.parallelism}"


RFC9106_LOW_MEMORY = KdfParams()
UNLOCK_BUDGET = UNLOCK_BUDGET_FACTOR * RFC9106_LOW_MEMORY.work


def stretch(passphrase: bytes, salt: bytes, params: KdfParams) -> bytes:
    """Argon2id(passphrase, salt) → 32-byte key-encryption key."""
    params.check()
    return hash_secret_raw(
        secret=passphrase,
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=32,
        type=Type.ID,
    )
