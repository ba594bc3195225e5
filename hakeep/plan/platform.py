"""Which haproxy and keepalived releases can run what an inventory asks, and which ones hakeep is
proven on.

An LB's versions come from its facts: the installed programs' own banners, or, for a package not
installed yet, the version its package manager would install (its candidate; unknown when the
host's package metadata has not been read yet). Three uses, all pure:

- preflight: a host whose version cannot do what the inventory asks is refused before anything
  changes, with the host, its version, what needs a newer one and the way out (:func:`check`);
- a version outside the releases hakeep is proven on is a warning, not an error (the host's own
  ``haproxy -c``/``keepalived -t`` still checks every file before it replaces anything);
- rendering: the templates get each host's versions (:func:`render_versions`), to choose a
  directive where releases differ. Unknown versions render for the newest proven release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hakeep.hosts.facts import HostFacts
from hakeep.hosts.versions import Version, short, version_key
from hakeep.inventory.model import Inventory
from hakeep.layout import NEWEST_PROVEN, PACKAGES, PROVEN

# per package: the oldest and newest major.minor proven
PROVEN_RANGE: dict[str, tuple[Version, Version]] = {
    pkg: (min(p.version(pkg)[:2] for p in PROVEN), max(p.version(pkg)[:2] for p in PROVEN)) for pkg in PACKAGES}


PROMEX = "prometheus-exporter"  # the service name haproxy -vv lists when it has the exporter


@dataclass(frozen=True)
class Need:
    """Something the inventory (or hakeep's own config) asks that only newer releases can do."""

    package: str
    since: Version
    what: str
    way_out: str


# hakeep's own config, whatever the inventory: haproxy's admin socket hands its listeners over on a
# reload (stats socket ... expose-fd listeners: haproxy 1.8, its configuration manual)
BASE_NEEDS = (
    Need("haproxy", (1, 8), "hakeep's config (stats socket ... expose-fd listeners)",
         "upgrade haproxy to 2.2 or newer"),
)


def needs(inv: Inventory) -> list[Need]:
    out = list(BASE_NEEDS)
    for i, fe in enumerate(inv.frontends):
        if fe.balance == "random":
            out.append(Need("haproxy", (1, 9), f"balance random in frontend {fe.name}",
                            f"choose another balance for frontend[{i}] ({fe.name}), "
                            "or upgrade haproxy to 2.2 or newer"))
        if fe.check == "https":
            out.append(Need("haproxy", (2, 2), f"the https health check of frontend {fe.name} "
                            "(http-check connect ssl, http-check send)",
                            f'set check = "tcp" for frontend[{i}] ({fe.name}), or upgrade haproxy to 2.2 or newer'))
    if inv.haproxy.prometheus is not None:
        out.append(Need("haproxy", (2, 0), "[haproxy.prometheus] (haproxy's built-in Prometheus exporter)",
                        "remove [haproxy.prometheus], or upgrade haproxy to 2.2 or newer"))
    return out


@dataclass(frozen=True)
class HostVersion:
    """One package's version on one host, and where it was read."""

    package: str
    version: str  # as reported; "" when unknown
    source: str  # "installed", "candidate" (its package manager would install it), "" not installed, unknown

    @property
    def key(self) -> Version | None:
        return version_key(self.version) if self.version else None

    def describe(self) -> str:
        if not self.version:
            if self.source == "installed":
                return f"{self.package} installed (version unknown: its banner was not understood)"
            return f"{self.package} not installed (version unknown until the package lists are read)"
        return f"{self.package} {self.version}" + (" (to be installed)" if self.source == "candidate" else "")


def host_versions(f: HostFacts) -> dict[str, HostVersion]:
    out = {}
    for pkg in PACKAGES:
        if f.installed(pkg):
            out[pkg] = HostVersion(pkg, f.versions.get(pkg, ""), "installed")
        else:
            out[pkg] = HostVersion(pkg, f.candidates.get(pkg, ""), "candidate" if f.candidates.get(pkg) else "")
    return out


def check(inv: Inventory, name: str, f: HostFacts) -> tuple[list[str], list[str]]:
    """Preflight errors and warnings of one LB's versions."""
    errors: list[str] = []
    warnings: list[str] = []
    versions = host_versions(f)
    for need in needs(inv):
        hv = versions[need.package]
        if hv.key is not None and hv.key[:len(need.since)] < need.since:
            errors.append(f"{name}: {need.package} {hv.version}{_source(hv)} cannot run {need.what}: that needs "
                          f"{need.package} {short(need.since)} or newer; {need.way_out}")
    services = f.haproxy_services if f.installed("haproxy") else None
    if inv.haproxy.prometheus is not None and services is not None and PROMEX not in services:
        shown = " ".join(filter(None, ("haproxy", versions["haproxy"].version)))
        errors.append(f"{name}: {shown} was built without its Prometheus exporter (haproxy -vv lists no {PROMEX} "
                      "service): remove [haproxy.prometheus], or install a haproxy built with it (USE_PROMEX=1)")
    for pkg, hv in versions.items():
        low, high = PROVEN_RANGE[pkg]
        if hv.key is not None and not low <= hv.key[:2] <= high and not any(e.startswith(f"{name}: {pkg} ")
                                                                              for e in errors):
            warnings.append(f"{name}: {pkg} {hv.version}{_source(hv)} is outside the releases hakeep is proven on "
                            f"({short(low)} to {short(high)}); the host's own {_validator(pkg)} still checks every "
                            "file before it replaces a live one")
    return errors, warnings


def _source(hv: HostVersion) -> str:
    return " (the version its package manager would install)" if hv.source == "candidate" else ""


def _validator(pkg: str) -> str:
    return "haproxy -c" if pkg == "haproxy" else "keepalived -t"


def render_versions(facts: Mapping[str, HostFacts], names: Sequence[str]) -> dict[str, dict[str, Version]]:
    """{LB: {package: version}} for the templates: each host's version, the newest proven when unknown."""
    out = {}
    for name in names:
        f = facts.get(name)
        known = {pkg: hv.key for pkg, hv in host_versions(f).items()} if f is not None else {}
        out[name] = {pkg: known.get(pkg) or NEWEST_PROVEN[pkg] for pkg in PACKAGES}
    return out
