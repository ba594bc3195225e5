"""``python -m hakeep``: the same as the ``hakeep`` command."""

from hakeep.cli import main

raise SystemExit(main())
