"""What running a plan produced, as typed, frozen results: per-host outcomes, validation outcomes,
the final VIP check, and the statuses a progress observer is told about."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    UNCHANGED = "unchanged"
    CHANGED = "changed"
    FAILED = "failed"
    SKIPPED = "skipped"  # not started: an earlier host failed


class StepStatus(StrEnum):
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"


class ValidationStatus(StrEnum):
    OK = "ok"
    REJECTED = "rejected"  # a validator refused its file
    NOT_INSTALLED = "not-installed"  # dry-run on a bare host: nothing to validate with yet
    ERROR = "error"  # the check could not run

    @property
    def refused(self) -> bool:
        return self in (ValidationStatus.REJECTED, ValidationStatus.ERROR)


@dataclass(frozen=True)
class HostOutcome:
    host: str
    status: Outcome
    detail: str = ""
    restored: bool | None = None  # after a failure: did the restore succeed?
    seconds: float = 0.0


@dataclass(frozen=True)
class FinalCheck:
    holders: tuple[str, ...]
    ports: Mapping[int, bool]
    seconds: float
    expect_vip: bool = True  # False after a rollback that stops keepalived everywhere
    outside: tuple[str, ...] = ()  # MACs of no LB in the set answering ARP for the VIP ("MAC (address)")
    others: tuple[tuple[str, str, FinalCheck], ...] = ()  # the other VIPs': (name, address, their check)

    @property
    def ok(self) -> bool:
        """This VIP's proof and every other VIP's."""
        return self.own_ok and all(check.ok for _, _, check in self.others)

    @property
    def own_ok(self) -> bool:
        if self.outside:
            return False
        if not self.expect_vip:
            return not self.holders
        return len(self.holders) == 1 and all(self.ports.values())


@dataclass(frozen=True)
class ValidationOutcome:
    host: str
    status: ValidationStatus
    output: str
