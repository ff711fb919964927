"""The suppression list: addresses Herald never mails again.

A row is keyed by ``herald_address_key(email)`` (migration 0018: an HMAC of the normalised
address, computed in SQL — its only definition), so an erased reader's address is
forgotten (``email`` NULL) while its key still blocks a re-import, an API create or a
sign-up of the same address in any case or with spaces around it. Reasons: ``unsubscribed``
(from everything, by the reader: the address is kept, and the reader's own double opt-in
sign-up lifts it), ``erased`` (the reader's data was deleted), ``manual`` (an operator),
and the deliverability reasons (``hard_bounce``, ``complaint``, ``provider``).

INVARIANT: adding a suppression for an address that has a subscription sets
``subscriptions.status = 'unsubscribed'`` in the same statement (the 0018 trigger then
unsubscribes every membership). The fan-out and the worker's re-check mail only
confirmed subscriptions, so they honour the list by construction, with no lookup of their
own. (An erasure deletes the subscription instead, in the statement that writes its
``erased`` row.)

Removing a suppression is an operator's decision; it never re-subscribes anyone (the
reader signs up again, with double opt-in). An ``erased`` row cannot be removed: its
address is unknown, and the reader asked to be forgotten.
"""
