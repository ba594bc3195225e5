"""Stage 4 of the flow: (inventory, rendered files, facts) -> an ordered plan; pure, no I/O.

Owns the plan's vocabulary (:mod:`.steps`), release history read from facts (:mod:`.releases`),
what each host should end up with (:mod:`.targets`), one host's steps (:mod:`.hostplan`) and whole
deploy and rollback plans (:mod:`.planner`). May import :mod:`hakeep.errors`, :mod:`hakeep.layout`,
:mod:`hakeep.inventory`, :mod:`hakeep.render` and the pure parts of :mod:`hakeep.hosts` (facts,
commands, scripts); never a transport, the runner or the CLI.
"""
