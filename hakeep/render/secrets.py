"""The passwords an inventory names, read from the environment (never from a file hakeep writes)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from hakeep.errors import UsageError
from hakeep.inventory.fields import SECRET_RE
from hakeep.inventory.model import Inventory
from hakeep.render.files import Secrets


def resolve_secrets(inv: Inventory, env: Mapping[str, str] | None = None) -> Secrets:
    """Read the passwords the inventory names from the environment (needed to render)."""
    env = os.environ if env is None else env
    auth = inv.cluster.auth_pass
    if auth is None and inv.cluster.auth_pass_env is None:
        auth = ""  # every VIP is IPv6: VRRPv3 has no password
    elif auth is None:
        auth = _secret_from_env(inv, env, "cluster.auth_pass_env", inv.cluster.auth_pass_env or "", 8)
    stats_pw = None
    stats = inv.haproxy.stats
    if stats is not None:
        stats_pw = stats.password
        if stats_pw is None:
            stats_pw = _secret_from_env(inv, env, "haproxy.stats.password_env", stats.password_env or "", 64)
    return Secrets(auth_pass=auth, stats_password=stats_pw)


def secret_env_names(inv: Inventory) -> tuple[str, ...]:
    """The environment variables the inventory names for its passwords: no child process hakeep
    starts gets them (see :mod:`hakeep.hosts.childenv`)."""
    stats = inv.haproxy.stats
    names = (inv.cluster.auth_pass_env, stats.password_env if stats is not None else None)
    return tuple(name for name in names if name)


def _secret_from_env(inv: Inventory, env: Mapping[str, str], key: str, var: str, limit: int) -> str:
    value = env.get(var)
    where = f"{inv.source}: {key}"
    if value is None or value == "":
        raise UsageError(f"{where}: environment variable {var} is not set",
                          hint=f"export {var}=... (the password) before running this command")
    if len(value) > limit:
        raise UsageError(f"{where}: ${var} is {len(value)} characters long; at most {limit} are used",
                          hint="keepalived silently truncates VRRP passwords to 8 characters")
    if not SECRET_RE.fullmatch(value):
        raise UsageError(f"{where}: ${var} contains characters that are not allowed",
                          hint="use letters, digits and _.,:+=@%^*?/-")
    return value


