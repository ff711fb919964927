"""The HTML form an operator pastes into any website to sign readers up to one list.

A plain ``<form method="post">`` to ``{public base URL}/subscriptions``: no script, no
asset from anywhere, no CSRF token (another site cannot have one; ``POST /subscriptions``
does not require it, contract §5). Herald answers with its own "check your inbox" page.
"""

from __future__ import annotations

from html import escape

from herald.lists.domain import NewsList


def form_snippet(base_url: str, news_list: NewsList) -> str:
    action = escape(base_url.rstrip("/") + "/subscriptions")
    slug = escape(news_list.slug)
    return (
        f'<form method="post" action="{action}" accept-charset="utf-8">\n'
        f'  <input type="hidden" name="list" value="{slug}">\n'
        "  <p><label>Name<br>\n"
        '    <input type="text" name="name" required maxlength="256" autocomplete="name">'
        "</label></p>\n"
        "  <p><label>Email<br>\n"
        '    <input type="email" name="email" required maxlength="320" autocomplete="email">'
        "</label></p>\n"
        f'  <p><button type="submit">Subscribe to {escape(news_list.name)}</button></p>\n'
        "</form>\n"
    )
