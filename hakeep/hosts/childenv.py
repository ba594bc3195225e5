"""The environment of the local processes hakeep starts while connecting: a ProxyCommand, and
``ssh -G`` (which runs ssh_config's ``Match exec`` commands itself).

hakeep reads secrets from its own environment: the sudo password from ``HAKEEP_SUDO_PASSWORD``
(:data:`SUDO_ENV`), the VRRP and stats passwords from the variables the inventory names
(``cluster.auth_pass_env``, ``haproxy.stats.password_env``; the session passes those names down).
None of them goes to a child process: a ProxyCommand (the target's or a ProxyJump hop's) and a
``ssh -G`` (and with it a ``Match exec`` command) get hakeep's environment without every one of
those variables (:func:`child_env`). Nothing here imports paramiko; :mod:`.sshhosts` and
:mod:`.sshresolve` start the processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

__all__ = ["SUDO_ENV", "child_env"]

SUDO_ENV = "HAKEEP_SUDO_PASSWORD"


def child_env(secret_env: Iterable[str] = ()) -> dict[str, str]:
    """hakeep's environment without :data:`SUDO_ENV` and the variables named in ``secret_env``."""
    drop = {SUDO_ENV, *secret_env}
    return {name: value for name, value in os.environ.items() if name not in drop}

