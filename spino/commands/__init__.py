"""The ``spino`` subcommands, one module each (its name, ``make_demo``, is the command ``make-demo``):
``HELP``, optionally ``GROUP = "tool"``, ``add_arguments(parser)`` and ``run(args)``.

A command parses its options and calls the library; the workflow's code digest of a command is
the import closure of its module (spino.provenance), so this package's ``__init__`` imports nothing.
"""
