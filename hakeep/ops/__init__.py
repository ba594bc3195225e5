"""Day-2 operations on an open session: status (:mod:`.status`) and the failover drill (:mod:`.drill`).

May import :mod:`hakeep.errors`, :mod:`hakeep.layout`, :mod:`hakeep.inventory`, :mod:`hakeep.hosts`,
:mod:`hakeep.plan` (release history) and :mod:`hakeep.run`; never the CLI.
"""
