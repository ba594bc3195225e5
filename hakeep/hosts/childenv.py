"""The environment of the local processes hakeep starts while connecting, and the one that runs an
ssh_config ``Match exec`` command.

hakeep reads secrets from its own environment: the sudo password from ``HAKEEP_SUDO_PASSWORD``
(:data:`SUDO_ENV`), the VRRP and stats passwords from the variables the inventory names
(``cluster.auth_pass_env``, ``haproxy.stats.password_env``; the session passes those names down).
None of them goes to a child process: a ProxyCommand (the target's or a ProxyJump hop's) and a
``Match exec`` command get hakeep's environment without every one of those variables
(:func:`child_env`). Nothing here imports paramiko; :mod:`.sshhosts` starts the processes.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable

__all__ = ["SUDO_ENV", "child_env", "match_exec"]

SUDO_ENV = "HAKEEP_SUDO_PASSWORD"


def child_env(secret_env: Iterable[str] = ()) -> dict[str, str]:
    """hakeep's environment without :data:`SUDO_ENV` and the variables named in ``secret_env``."""
    drop = {SUDO_ENV, *secret_env}
    return {name: value for name, value in os.environ.items() if name not in drop}


def match_exec(command: str, secret_env: Iterable[str] = ()) -> bool:
    """Does ssh_config's ``Match exec`` command succeed? Run as OpenSSH runs it: ``$SHELL -c``
    (else /bin/sh), stdin and stdout on /dev/null, stderr inherited; without the secret variables."""
    shell = os.environ.get("SHELL") or "/bin/sh"
    done = subprocess.run([shell, "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          env=child_env(secret_env), check=False)
    return done.returncode == 0
