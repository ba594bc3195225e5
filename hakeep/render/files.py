"""The rendered files of a host, and the masking that keeps secrets out of every view.

A :class:`ManagedFile` is one file hakeep owns on an LB (path, bytes, mode, owner, the unit that
reads it, its validator) with the secret strings it contains; :class:`HostFiles` is one LB's set.
:func:`mask` hides secrets in any text shown to a person (diffs, listings).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from hakeep.inventory.model import LoadBalancer
from hakeep.layout import owner_of, validator_of

MASK = "********"
_SECRET_LINE = re.compile(r"(auth_pass\s+|stats auth [^:\s]+:)\S+")


def mask(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret, and whatever follows ``auth_pass``/``stats auth user:``, masked."""
    for s in secrets:
        text = text.replace(s, MASK)
    return _SECRET_LINE.sub(lambda m: m.group(1) + MASK, text)


@dataclass(frozen=True)
class Secrets:
    auth_pass: str
    stats_password: str | None = None

    def values(self) -> tuple[str, ...]:
        return tuple(v for v in (self.auth_pass, self.stats_password) if v)


@dataclass(frozen=True)
class ManagedFile:
    """One file hakeep owns on a host."""

    path: str
    content: bytes
    mode: int
    owner: str = "root"
    group: str = "root"
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def service(self) -> str:
        """The unit that reads it (see :func:`hakeep.layout.owner_of`)."""
        return owner_of(self.path).name

    @property
    def validate(self) -> tuple[str, ...]:
        """The argv that checks it on a host ("{}" stands for its path); () when nothing does."""
        return validator_of(self.path)

    def masked_text(self) -> str:
        text = self.content.decode("utf-8")
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


@dataclass(frozen=True)
class HostFiles:
    lb: LoadBalancer
    files: tuple[ManagedFile, ...]

    def file(self, path: str) -> ManagedFile:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)


