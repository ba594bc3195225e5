"""The rendered files of a host, and the resolved secrets they are rendered with.

A :class:`ManagedFile` is one file hakeep owns on an LB (path, bytes, mode, owner, the unit that
reads it, its validator) with the form a person may see (:mod:`.masking`); :class:`HostFiles` is
one LB's set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hakeep.inventory.model import LoadBalancer
from hakeep.layout import owner_of, validator_of
from hakeep.render.masking import MASK, mask_directives


@dataclass(frozen=True)
class Secrets:
    auth_pass: str = field(repr=False)
    stats_password: str | None = field(default=None, repr=False)

    def values(self) -> tuple[str, ...]:
        return tuple(v for v in (self.auth_pass, self.stats_password) if v)

    def masked(self) -> Secrets:
        """The same secrets, each one ``********``: what a file a person may see is rendered with."""
        return Secrets(MASK, MASK if self.stats_password is not None else None)


@dataclass(frozen=True)
class ManagedFile:
    """One file hakeep owns on a host."""

    path: str
    content: bytes
    mode: int
    owner: str = "root"
    group: str = "root"
    #: the file as a person may see it: rendered with every secret masked, line for line; None for
    #: a file hakeep did not render (a saved one): then its secret directives are masked
    shown: bytes | None = field(default=None, repr=False)
    #: the run's secrets: words of a live file's removed lines that are one of them are masked too
    secrets: tuple[str, ...] = field(default=(), repr=False)
    #: put back by a rollback: the file was live on this host before (a hand-made one may carry what
    #: the validator refuses but the daemon ran, as the recipe's ``vrrp_garp_interval 0``); its
    #: validator's refusal is then shown, not fatal, and the health gate decides
    ran_before: bool = False

    @property
    def service(self) -> str:
        """The unit that reads it (see :func:`hakeep.layout.owner_of`)."""
        return owner_of(self.path).name

    @property
    def validate(self) -> tuple[str, ...]:
        """The argv that checks it on a host ("{}" stands for its path); () when nothing does."""
        return validator_of(self.path)

    def masked_text(self) -> str:
        if self.shown is not None:
            return self.shown.decode("utf-8")
        return mask_directives(self.content.decode("utf-8", "replace"))


@dataclass(frozen=True)
class HostFiles:
    lb: LoadBalancer
    files: tuple[ManagedFile, ...]

    def file(self, path: str) -> ManagedFile:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)


