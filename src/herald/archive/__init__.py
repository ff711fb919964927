"""The public archive and feeds of a list (migration 0030).

An issue an editor marked public gets, once sent, a page at ``/archive/{list}/{slug}`` for
each public list it went to (its slug given once by the database when it started publishing,
never changed), a place in the list's archive index ``/archive/{list}`` (newest first, keyset
pages) and in its RSS 2.0 and Atom feeds (``feed.rss``, ``feed.atom``, written with
``feedgenerator``). The copy is the issue's HTML body rendered for an anonymous reader
(``{{ subscriber.name }}`` is "reader", the address and attributes are empty, the unsubscribe
link goes to the list's public page): no reader's links, no tracking, and passed through an
allow-list sanitiser (:mod:`herald.archive.sanitize`). A private list, an unknown one, a
draft, an issue not yet sent or not public are all the same 404.
"""
