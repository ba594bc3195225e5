"""Render the desired files of every LB host from a validated inventory (Jinja2).

This module owns the mapping inventory -> files: which files hakeep manages on a host, with their
modes and owners (paths, units and validators come from :mod:`hakeep.layout`). It is pure apart
from reading templates and CA files: the same inventory and secrets always give the same bytes (no
timestamps), which makes re-deploys idempotent. Secrets come in resolved (:mod:`.secrets`); each
file is also rendered with every secret masked: the form every view shows (:mod:`.masking`).
Templates, shipped or ``--templates``, run in Jinja2's immutable sandbox with StrictUndefined.
The only jinja2 import.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from pathlib import Path

import jinja2
import jinja2.sandbox

from hakeep.errors import UsageError
from hakeep.inventory.model import Inventory
from hakeep.layout import (
    CHECK_SCRIPT,
    HAPROXY,
    HAPROXY_CFG,
    HAPROXY_DOWN_FILE,
    KEEPALIVED,
    KEEPALIVED_CONF,
    NEWEST_PROVEN,
    NOTIFY_SCRIPT,
    SCRIPT_USER,
    STATS_SOCKET,
    VRRP_STATE_FILE,
    ca_path,
)
from hakeep.render.files import HostFiles, ManagedFile, Secrets


def default_templates_dir() -> Path:
    package = Path(__file__).resolve().parent.parent  # hakeep/
    packaged = package / "templates"  # in a wheel
    return packaged if packaged.is_dir() else package.parent / "templates"  # in a checkout


@functools.cache  # one per templates folder: each template is compiled once per run
def _environment(templates: Path | None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if templates is not None:
        if not templates.is_dir():
            raise UsageError(f"{templates}: templates folder not found")
        loaders.append(jinja2.FileSystemLoader(str(templates)))
    loaders.append(jinja2.FileSystemLoader(str(default_templates_dir())))
    # the sandbox: a template reads the values it is given, and can call or change nothing of hakeep's
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
        autoescape=False,  # config files and shell, not HTML; inputs are charset-checked
    )
    env.filters["hostport"] = hostport
    return env


def hostport(address: str, port: int, dual: bool = False) -> str:
    """haproxy's ADDRESS:PORT: an IPv6 address in brackets; "*" is every IPv4 address, or with
    ``dual`` (the inventory has an IPv6 VIP) one socket for every address of both families."""
    if address == "*":
        return f"[::]:{port} v4v6" if dual else f"*:{port}"
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def managed_paths(inv: Inventory) -> list[str]:
    """Every path hakeep manages on an LB for this inventory (no secrets needed)."""
    cas = [ca_path(fe.name) for fe in inv.frontends if fe.ca_file is not None]
    return [HAPROXY_CFG, *cas, HAPROXY.dropin, CHECK_SCRIPT, NOTIFY_SCRIPT, KEEPALIVED_CONF, KEEPALIVED.dropin]


def render_all(
    inv: Inventory, secrets: Secrets, templates: Path | None = None, root: str = "",
    versions: Mapping[str, Mapping[str, tuple[int, ...]]] | None = None,
) -> dict[str, HostFiles]:
    """Every LB's managed files, keyed by LB name, in inventory order.

    ``root`` prefixes the paths that files *refer to* (CA files, scripts): the validation copy a
    host checks in a private temp folder before anything replaces a live file. The files' own
    ``path`` stays the live path; a caller places them under ``root`` itself.

    ``versions``: per LB, the haproxy and keepalived releases it runs or will install, as numbers
    (:func:`hakeep.plan.platform.render_versions`); the templates get them as ``haproxy_version``
    and ``keepalived_version`` (e.g. ``{% if haproxy_version >= (2, 4) %}``; haproxy.cfg is one file
    for all LBs and gets no ``lb``). An LB without them renders for the newest release hakeep is proven on.
    """
    env = _environment(templates)
    ca_files = _read_ca_files(inv)
    prios = max(inv.priority_sets(), key=lambda p: max(p) - min(p))  # the widest spread the weight must exceed
    common = {
        "cluster": inv.cluster, "haproxy": inv.haproxy,
        "frontends": inv.frontends, "stats_socket": STATS_SOCKET, "check_script": root + CHECK_SCRIPT,
        "notify_script": root + NOTIFY_SCRIPT, "state_file": VRRP_STATE_FILE,
        "script_user": SCRIPT_USER, "haproxy_down_file": HAPROXY_DOWN_FILE,
        "run_dir": HAPROXY_DOWN_FILE.rsplit("/", 1)[0], "keepalived_restart_s": _keepalived_restart_s(inv),
        "weight": inv.check_weight, "prio_min": min(prios),
        "prio_max": max(prios), "advert_int": _advert(inv.cluster.advert_int),
        "ca_paths": {name: root + ca_path(name) for name in ca_files},
        "textfile_dir": inv.keepalived_metrics.textfile_dir if inv.keepalived_metrics else "",
        "vips": inv.vips, "has_ipv6": inv.has_ipv6,
        "ipv6_clients": [fe.name for fe in inv.frontends if inv.ipv6_clients(fe)],
    }

    def render(name: str, ctx: Mapping[str, object]) -> tuple[bytes, bytes]:
        """The file, and the same file rendered with every secret masked (what a person sees). The
        masked one first: an error a template makes is told without a secret in it."""
        masked = secrets.masked()
        shown = _render(env, name, dict(ctx, auth_pass=masked.auth_pass, stats_password=masked.stats_password))
        real = _render(env, name, dict(ctx, auth_pass=secrets.auth_pass, stats_password=secrets.stats_password),
                       quiet=True)
        return real, shown

    known = secrets.values()
    has_password = inv.haproxy.stats is not None
    # one haproxy.cfg per (haproxy, keepalived) release pair: the same file on every LB of one pair
    haproxy_cfgs: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[bytes, bytes]] = {}
    out: dict[str, HostFiles] = {}
    for lb in inv.lbs:
        have = (versions or {}).get(lb.name, {})
        hv, kv = (have.get(pkg) or NEWEST_PROVEN[pkg] for pkg in ("haproxy", "keepalived"))
        if (hv, kv) not in haproxy_cfgs:
            haproxy_cfgs[hv, kv] = render("haproxy.cfg.j2", dict(common, haproxy_version=hv, keepalived_version=kv))
        haproxy_cfg, haproxy_shown = haproxy_cfgs[hv, kv]
        ctx = dict(common, lb=lb, peers=[p for p in inv.lbs if p.name != lb.name], haproxy_version=hv,
                   keepalived_version=kv)
        files = [
            # with a stats password inside, not world-readable (haproxy reads it as root, then as its group)
            ManagedFile(HAPROXY_CFG, haproxy_cfg, 0o640 if has_password else 0o644,
                        group="haproxy" if has_password else "root", shown=haproxy_shown, secrets=known),
            *(ManagedFile(ca_path(name), data, 0o644, shown=data) for name, data in ca_files.items()),
        ]
        for path, template, mode in ((HAPROXY.dropin, "haproxy.dropin.conf.j2", 0o644),
                                     (CHECK_SCRIPT, "check_haproxy.sh.j2", 0o755),
                                     (NOTIFY_SCRIPT, "notify.sh.j2", 0o755)):
            text, text_shown = render(template, ctx)
            files.append(ManagedFile(path, text, mode, shown=text_shown, secrets=known))
        ka, ka_shown = _with_digest(*render("keepalived.conf.j2", dict(ctx, config_digest=DIGEST_MARK)))
        files.append(ManagedFile(KEEPALIVED_CONF, ka, 0o600, shown=ka_shown, secrets=known))
        dropin, dropin_shown = render("keepalived.dropin.conf.j2", ctx)
        files.append(ManagedFile(KEEPALIVED.dropin, dropin, 0o644, shown=dropin_shown, secrets=known))
        out[lb.name] = HostFiles(lb=lb, files=tuple(files))
    return out


DIGEST_MARK = "@hakeep-file-digest@"


def _with_digest(content: bytes, shown: bytes) -> tuple[bytes, bytes]:
    """``content`` with DIGEST_MARK replaced by a digest of the rest (keepalived.conf's router_id
    carries it, so keepalived's own report proves which file it loaded), and its masked form with
    the digest masked too: taken over the real file, it would let anyone try passwords offline."""
    mark = DIGEST_MARK.encode()
    digest = hashlib.sha256(content).hexdigest()[:12].encode()
    return content.replace(mark, digest), shown.replace(mark, b"*" * len(digest))


def _keepalived_restart_s(inv: Inventory) -> int:
    """How long systemd waits before it starts a crashed keepalived: until the peer has taken over
    (its master-down interval: 3 x advert_int as VRRPv2 runs it + a skew under 1 s), and 1 s more."""
    return 3 * inv.cluster.vrrp_advert_s + 2


def _advert(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _render(env: jinja2.Environment, name: str, ctx: Mapping[str, object], *, quiet: bool = False) -> bytes:
    """``quiet``: the error does not quote the exception (rendered with the real secrets, it may
    hold one)."""
    try:
        return env.get_template(name).render(**ctx).encode("utf-8")
    except jinja2.TemplateNotFound as exc:
        raise UsageError(f"template {exc.name} not found") from None
    except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError, RecursionError,
            MemoryError) as exc:
        # a template's own mistakes (a user's, with --templates): 1/0, a bad index, range(10**9)...
        where = f"{getattr(exc, 'filename', None) or name}"
        lineno = getattr(exc, "lineno", None)
        if lineno:
            where += f":{lineno}"
        what = "fails with the real passwords (it depends on their values)" if quiet else str(exc)
        raise UsageError(f"template {where}: {what}", hint="fix the template or drop --templates") from None


def _read_ca_files(inv: Inventory) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for i, fe in enumerate(inv.frontends):
        if fe.ca_file is None:
            continue
        try:
            data = fe.ca_file.read_bytes()
        except OSError as exc:
            raise UsageError(f"{inv.source}: frontend[{i}].ca_file: {fe.ca_file}: {exc.strerror}") from None
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise UsageError(f"{inv.source}: frontend[{i}].ca_file: {fe.ca_file} holds no PEM certificate")
        out[fe.name] = data
    return out
