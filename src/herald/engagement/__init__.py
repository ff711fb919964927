"""Opt-in engagement tracking (the deliverability issue, migration 0031).

Off by default, per issue: the editor's "Track opens and clicks" checkbox or the API's
``tracking`` field, frozen when the issue is published (publishing stores the issue's link
targets, :mod:`herald.engagement.links`). A tracked issue's emails carry an open pixel and
click URLs signed per delivery (:mod:`herald.engagement.tokens`); the click route redirects
only to the issue's stored links. A reader who turned tracking off in the preference centre
(``tracking_opt_outs``) gets plain copies, and the tracked copies they already have count
nothing from then on. Opens and clicks that a machine made (Apple Mail Privacy Protection,
link scanners) are counted apart (:mod:`herald.engagement.domain`).

Only the emails a worker sends are tracked: the reader's web copy (``/v/{token}``), test
sends and the editor's previews carry no pixel and plain links, so looking at an issue
outside the inbox counts nothing. The text part keeps plain links. A reader's opens and
clicks are in their data download (the preference centre); erasing them leaves the counts
anonymous (``deliveries.subscriber_id`` is nulled).
"""
