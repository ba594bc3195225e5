"""One module per ``hakeep`` subcommand: ``add_arguments(parser)`` and ``run(args) -> exit code``."""
