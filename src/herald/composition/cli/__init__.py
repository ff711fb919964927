"""The ``herald`` command line (contract §1): ``main`` assembles the subcommand modules."""
