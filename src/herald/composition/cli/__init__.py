"""The ``herald`` command line (``up``, ``serve``, ``worker``, ``migrate``, ``outbox``, ``config``,
``users``, ``apikeys``): ``main`` assembles the subcommand modules."""
