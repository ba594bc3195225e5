"""``python -m hakeep``: the same as the ``hakeep`` command."""

from hakeep.cli.main import main

raise SystemExit(main())
