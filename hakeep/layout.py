"""The LB host's layout, in one place: every remote path, unit, package and validator hakeep knows,
and the releases of those packages hakeep is proven on.

Renderer, facts, planner, executor and the remote scripts all take these names from here (the
scripts receive them as shell variables), so a path or a unit name is written once. Which unit
owns a managed file, and which command validates it, are answered here too. Pure data, no imports
from hakeep.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
CHECK_SCRIPT = "/etc/keepalived/hakeep-check-haproxy.sh"
NOTIFY_SCRIPT = "/etc/keepalived/hakeep-notify.sh"
CA_DIR = "/etc/haproxy/hakeep"  # CA files of https checks: CA_DIR/<frontend>-ca.crt
SYSCTL_CONF = "/etc/sysctl.d/90-hakeep.conf"
SYSTEMD_DIR = "/etc/systemd/system"  # each unit's drop-in: SYSTEMD_DIR/<unit>.service.d/hakeep.conf

VRRP_STATE_FILE = "/run/hakeep/vrrp-state"  # "STATE PRIORITY EPOCH", written by the notify script
# "0" while haproxy's unit runs, "1" once it stopped, crashed or failed to start: written by systemd
# (haproxy's drop-in) the moment the unit changes, synced from it whenever keepalived (re)loads
# (keepalived's drop-in); keepalived tracks it (inotify) and goes to FAULT on a 1
HAPROXY_DOWN_FILE = "/run/hakeep/haproxy-down"
# haproxy's admin socket: in its chroot folder, which every distribution's package creates (RHEL's
# does not create /run/haproxy, where a socket would keep haproxy from starting; RHEL's own default
# socket lives in /var/lib/haproxy too, and SELinux allows haproxy to make it there)
STATS_SOCKET = "/var/lib/haproxy/admin.sock"
STATS_SOCKET_BEFORE = "/run/haproxy/admin.sock"  # where hakeep 0.1 put it: read until the next deploy moves it
STATS_SOCKETS = (STATS_SOCKET, STATS_SOCKET_BEFORE)
# keepalived's data dump (DATA signal), fixed by keepalived; read through /proc/PID/root, only when fresh,
# root-owned and not a link (keepalived writes it by renaming a 0600 temporary file)
KEEPALIVED_DATA = "/tmp/keepalived.data"  # noqa: S108
KEEPALIVED_DUMP_LOCK = "/run/hakeep/keepalived-dump.lock"  # one dump at a time: each deletes the last
LOCK_PATH = "/run/hakeep.lock"  # flock; the holder is written to LOCK_PATH.owner
CHECK_ROOT = "/run/hakeep/check-"  # + release id: the private folder of on-host validation
RELEASES_DIR = "/var/lib/hakeep/releases"
STAGED_SUFFIX = ".hakeep-new"  # a new file waits beside its target under this suffix

MANAGED_MARK = b"# Managed by hakeep"  # the first words of every file hakeep renders
SCRIPT_USER = "root"  # keepalived 2.2.7 -t kills itself (SIGTERM) with a non-root script_user
# systemd UnitFileState values that mean "starts at boot"
ENABLED_STATES = ("enabled", "static", "alias", "indirect", "generated")


@dataclass(frozen=True)
class Unit:
    """One service hakeep manages: its systemd unit, package, main config and that config's validator."""

    name: str
    package: str
    main_config: str
    config_dir: str  # every managed file under it belongs to this unit
    validator: tuple[str, ...]  # argv that checks a config file; "{}" stands for its path

    @property
    def dropin(self) -> str:
        """hakeep's systemd drop-in for this unit (restart policy, haproxy's state for keepalived)."""
        return f"{SYSTEMD_DIR}/{self.name}.service.d/hakeep.conf"

    def validate_argv(self, path: str) -> tuple[str, ...]:
        return validate_argv(self.validator, path)


def validate_argv(validator: Sequence[str], path: str) -> tuple[str, ...]:
    """A validator's argv for one file: "{}" replaced by the file's path."""
    return tuple(path if a == "{}" else a for a in validator)


HAPROXY = Unit("haproxy", "haproxy", HAPROXY_CFG, "/etc/haproxy/", ("haproxy", "-c", "-q", "-f", "{}"))
KEEPALIVED = Unit("keepalived", "keepalived", KEEPALIVED_CONF, "/etc/keepalived/", ("keepalived", "-t", "-f", "{}"))
UNITS = (HAPROXY, KEEPALIVED)  # also the order a host's units are changed in
UNIT_NAMES = tuple(u.name for u in UNITS)
PACKAGES = tuple(u.package for u in UNITS)


@dataclass(frozen=True)
class Platform:
    """A distribution release hakeep is proven on: its haproxy and keepalived releases, on which
    the lab's real hosts run first deploy, no-op, change, rollback and drill (tests/test_platforms_lab.py)."""

    name: str
    haproxy: tuple[int, ...]
    keepalived: tuple[int, ...]

    def version(self, package: str) -> tuple[int, ...]:
        return self.haproxy if package == HAPROXY.package else self.keepalived


PROVEN = (
    Platform("Debian 11 (bullseye)", (2, 2, 9), (2, 1, 5)),
    Platform("Debian 12 (bookworm)", (2, 6, 12), (2, 2, 7)),
    Platform("Debian 13 (trixie)", (3, 0, 11), (2, 3, 3)),
)
# what an LB whose versions are unknown is rendered for: the newest releases proven
NEWEST_PROVEN = {pkg: max(p.version(pkg) for p in PROVEN) for pkg in PACKAGES}


def unit(name: str) -> Unit:
    return next(u for u in UNITS if u.name == name)


def owner_of(path: str) -> Unit:
    """The unit that reads a managed file (decided by its folder; a drop-in: the unit it extends)."""
    for u in UNITS:
        if path.startswith(u.config_dir) or path == u.dropin:
            return u
    raise ValueError(f"{path} is not a file hakeep manages")


def validator_of(path: str) -> tuple[str, ...]:
    """The argv that validates ``path`` ("{}" for the path), or () when nothing validates it alone."""
    owner = owner_of(path)
    return owner.validator if path == owner.main_config else ()


def is_dropin(path: str) -> bool:
    """Whether ``path`` is one of hakeep's systemd drop-ins (changing one needs a daemon-reload)."""
    return any(path == u.dropin for u in UNITS)


def ca_path(frontend_name: str) -> str:
    return f"{CA_DIR}/{frontend_name}-ca.crt"


def staged(path: str) -> str:
    return path + STAGED_SUFFIX
