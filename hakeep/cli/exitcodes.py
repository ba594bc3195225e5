"""The exit codes of the ``hakeep`` command, in one place (documented in README.md)."""

import signal

OK = 0  # done; for a dry-run: nothing would change; for status: healthy
FAILED = 1  # a remote step, a health gate or a drill failed (hosts are left on a working config)
INVALID = 2  # bad input: inventory, options, environment, templates; nothing was touched
CHANGES_PENDING = 3  # dry-run and diff only: changes would be made
PREFLIGHT = 4  # preflight or on-host validation refused the deploy: nothing was changed
UNREACHABLE = 5  # an LB needed could not be reached (status: no LB could); nothing was changed
DEGRADED = 6  # status: the VIP is served, but an LB is unreachable or unwell, or drift
SPLIT_BRAIN = 7  # status: the VIP is on two or more LBs at once
VIP_LOST = 8  # status: the VIP is on no LB, or it does not answer
INTERRUPTED = 130  # Ctrl-C (SIGINT); the host being changed was restored, the lock released
HANGUP = 129  # SIGHUP (the terminal closed): handled as Ctrl-C
TERMINATED = 143  # SIGTERM (e.g. a cancelled CI job): handled as Ctrl-C
# a signal's exit code is 128 + its number
SIGNALS: dict[int, int] = {signal.SIGINT: INTERRUPTED, signal.SIGHUP: HANGUP, signal.SIGTERM: TERMINATED}

# status's verdicts (hakeep.ops.status.Verdict values) -> exit code; drill refuses with the same
VERDICTS = {"healthy": OK, "degraded": DEGRADED, "split brain": SPLIT_BRAIN, "VIP lost": VIP_LOST,
            "unreachable": UNREACHABLE}
