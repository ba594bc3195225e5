"""Stage 5 of the flow: run against the hosts — open a session (connect, lock, facts once), then
execute a plan with health gates and per-host restore, and prove the result.

Owns :mod:`.session`, :mod:`.execute` and the typed results (:mod:`.results`). May import every
stage before it (errors, layout, inventory, render, hosts, plan); never the operations or the CLI.
"""
