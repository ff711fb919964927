"""The composition root: the one package that imports the features and assembles them.

``app`` builds the ASGI application from every feature's router; ``runtime`` runs the
processes (``up``, ``serve``, ``worker``); ``multiprocess`` serves ``--workers N``;
``housekeeping`` runs every feature's periodic clean-up; ``cli`` is the console script.
No feature imports this package (tests/unit/test_architecture.py).
"""
