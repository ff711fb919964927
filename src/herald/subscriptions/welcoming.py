"""The seam through which a confirmation queues welcome emails.

A list's welcome email (``herald.welcomes``) is rendered with the issues' template sandbox,
which sits above this package; so the subscription code does not import it. It calls a
:class:`Welcomer` it was given instead, in the transaction that confirmed something (a
confirmation link, a single-opt-in sign-up, a join in the preference centre): the
composition root provides the real one, and without it nothing is welcomed.
"""

from __future__ import annotations

import uuid

from herald.core.db import Connection


class Welcomer:
    """Queues the welcome emails a confirmation earned, in the caller's transaction. This
    base class queues none (the processes and tests that run without welcomes)."""

    async def welcome(self, conn: Connection, subscriber_id: uuid.UUID) -> int:
        """Queue the welcome of every list whose membership (or whose reader's address)
        ``conn``'s transaction confirmed; how many were queued."""
        del conn, subscriber_id
        return 0


NO_WELCOMES = Welcomer()
