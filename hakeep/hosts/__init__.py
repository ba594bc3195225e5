"""Stage 3 of the flow: talking to the LB hosts — SSH, the commands and scripts they run, their facts.

Owns the :class:`~.remote.Transport` seam and its SSH implementation (:mod:`.transport` and
:mod:`.sshhosts` and :mod:`.channel`, the only fabric/paramiko imports), running one function on many hosts
(:mod:`.group`), the remote scripts (``sh/*.sh`` filled in by :mod:`.scripts`; small commands built
in :mod:`.commands`), the facts script's parser (:mod:`.facts`) and keepalived's own account of
what it runs against its file (:mod:`.keepalived`). May import :mod:`hakeep.errors`,
:mod:`hakeep.layout` and :mod:`hakeep.inventory`; never the renderer, planner, runner or CLI.
"""
