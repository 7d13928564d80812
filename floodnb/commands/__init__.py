"""One module per ``floodnb`` subcommand: ``HELP``, ``add_arguments(parser)``, ``run(args)``."""
