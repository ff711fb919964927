"""The reader's preference centre: ``/preferences?token=…``, the link in every email.

The token is the one of the email's unsubscribe link (:mod:`herald.subscriptions.unsubscribe`:
the subscriber id and its HMAC), so the page needs no login and no second signature: whoever
holds the link got it at that address. From it the reader sees their address and lists,
joins (confirmed at once: the link proves the address; consent source ``preferences``, with
the IP address and user agent) or leaves them, unsubscribes from everything (suppressed as
``unsubscribed``), downloads their data as JSON, and erases themselves (after a
confirmation step: the subscriber deleted and the address kept only as an ``erased``
suppression key, in one statement). Every POST checks the token again and the CSRF token.
"""
