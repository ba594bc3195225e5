"""Stage 2 of the flow: inventory -> the files every LB should have (pure; no host is contacted).

Owns the Jinja2 rendering (:mod:`.engine`, the only jinja2 import), the rendered-file objects and
secret masking (:mod:`.masking`) and reading the passwords the inventory names (:mod:`.secrets`).
May import :mod:`hakeep.errors`, :mod:`hakeep.layout` and :mod:`hakeep.inventory`; nothing that
talks to hosts, plans or prints.
"""
