"""One module per ``dlnet`` subcommand: ``configure(parser)`` and ``run(args) -> int``."""
