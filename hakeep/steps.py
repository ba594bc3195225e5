"""The plan's vocabulary: steps, file changes, host plans and plans (frozen data, no logic).

A :class:`Step` is a remote ``sh`` script with a one-line description (and, for uploads, the
bytes it reads on stdin); a :class:`HostPlan` is one host's ordered steps plus the steps that undo
them; a :class:`Plan` is every host's, in rollout order, with preflight errors and warnings. The
same objects feed the dry-run view, ``--json`` and the executor. Also the masking of secrets in
diffs, so no view can show a password.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hakeep.render import MASK

CHECK_ROOT = "/run/hakeep/check-"
LOCK_PATH = "/run/hakeep.lock"


@dataclass(frozen=True)
class Step:
    action: str  # install backup stage commit validate mode remove sysctl firewalld selinux service wait gate ...
    describe: str
    script: str = field(default="", repr=False)
    stdin: bytes = field(default=b"", repr=False)
    wait: float = 0.0  # > 0: poll the script until it succeeds, at most this many seconds


@dataclass(frozen=True)
class FileChange:
    path: str
    action: str  # "create", "update", "mode" or "delete"
    diff: str  # unified diff with secrets masked; "" for a mode-only change
    old_mode: int | None
    new_mode: int | None


@dataclass(frozen=True)
class DriftNote:
    path: str
    release: str


@dataclass(frozen=True)
class HostPlan:
    host: str
    holds_vip: bool
    packages: tuple[str, ...]  # to install
    install: Step | None
    validate: tuple[Step, ...]  # check the new files with the host's binaries, in a private folder
    changes: tuple[FileChange, ...]
    steps: tuple[Step, ...]  # the rollout of this host, gate included
    restore: tuple[Step, ...]  # back to the files and unit states before this run, gate re-checked
    release_dir: str
    manifest: Mapping[str, object] = field(repr=False)
    drift: tuple[DriftNote, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.packages or self.steps)


@dataclass(frozen=True)
class Plan:
    release_id: str
    kind: str  # deploy or rollback
    vip: str
    ports: tuple[int, ...]
    expect_vip: bool  # keepalived runs somewhere after this plan: exactly one LB must hold the VIP
    hosts: tuple[HostPlan, ...]  # rollout order
    errors: tuple[str, ...]  # preflight failures: nothing may change while there is one
    warnings: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return any(h.changed for h in self.hosts)

    @property
    def drift(self) -> list[tuple[str, DriftNote]]:
        return [(h.host, d) for h in self.hosts for d in h.drift]

    def host(self, name: str) -> HostPlan:
        return next(h for h in self.hosts if h.host == name)


_SECRET_LINE = re.compile(r"(auth_pass\s+|stats auth [^:\s]+:)\S+")


def mask(text: str, secrets: Sequence[str]) -> str:
    for s in secrets:
        text = text.replace(s, MASK)
    return _SECRET_LINE.sub(lambda m: m.group(1) + MASK, text)


def unified_diff(path: str, old: bytes | None, new: bytes | None, secrets: Sequence[str]) -> str:
    a = mask(old.decode("utf-8", "replace"), secrets).splitlines(keepends=True) if old is not None else []
    b = mask(new.decode("utf-8", "replace"), secrets).splitlines(keepends=True) if new is not None else []
    lines = difflib.unified_diff(a, b, fromfile=f"{path} (live)" if old is not None else "/dev/null",
                                 tofile=f"{path} (new)" if new is not None else "/dev/null")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_bytes(data: Mapping[str, object]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
