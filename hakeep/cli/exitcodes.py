"""The exit codes of the ``hakeep`` command, in one place (documented in README.md)."""

OK = 0  # done; for a dry-run: nothing would change
FAILED = 1  # a remote step or a health gate failed (hosts are left on a working config)
INVALID = 2  # bad input: inventory, options, environment, templates; nothing was touched
CHANGES_PENDING = 3  # dry-run only: changes would be made
INTERRUPTED = 130  # Ctrl-C
PREFLIGHT = 4  # preflight or on-host validation refused the deploy: nothing was changed
