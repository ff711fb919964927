"""Opt-in engagement tracking without a database: the signed token, the links found and
rewritten once per issue, the machine heuristics, and what a tracked copy carries."""

from __future__ import annotations

import re
import uuid

import pytest
from pydantic import SecretStr

from herald.core.config import Settings
from herald.engagement.domain import Hit, machine_click, machine_open
from herald.engagement.links import MAX_LINKS, rewrite, tracked_links
from herald.engagement.tokens import TrackingLinks, parse_token
from herald.issues.rendering import compile_issue, issue_email

BASE = "https://news.herald.test"
SETTINGS = Settings(secret_key=SecretStr("k" * 48), base_url=BASE)
ISSUE = uuid.uuid4()

BODY = (
    '<p><a href="https://example.org/a?x=1&amp;y=2">A</a> '
    "<a href='https://example.org/b'>B</a> "
    '<a class="button" href="https://example.org/a?x=1&amp;y=2">A again</a> '
    '<a href="mailto:editor@example.org">mail</a> '
    '<a href="/relative">relative</a> '
    '<a href="javascript:alert(1)">js</a> '
    '<a href="{{ unsubscribe_url }}">leave</a> '
    '<a href="https://example.org/u?e={{ subscriber.email }}">personal</a> '
    f'<a href="{BASE}/preferences?token=x">prefs</a> '
    f'<a href="{BASE}/v/abc">web copy</a> '
    '<a data-href="https://example.org/not-a-link" href="https://example.org/c">C</a></p>'
)


# -- the token ----------------------------------------------------------------------------


def test_a_token_names_one_delivery_of_one_issue_and_is_short() -> None:
    links = TrackingLinks(SETTINGS, ISSUE)
    for delivery in (0, 1, 123_456_789, 2**63 - 1):
        token = links.token(delivery)
        assert len(token) == 55
        parsed = parse_token(SETTINGS, token)
        assert parsed is not None
        assert (parsed.issue_id, parsed.delivery_id) == (ISSUE, delivery)
    pixel, click = links.urls(7)
    token = links.token(7)
    assert pixel == f"{BASE}/t/o/{token}.gif"
    assert click == f"{BASE}/t/c/{token}"
    assert links.token(7) != TrackingLinks(SETTINGS, uuid.uuid4()).token(7)


def test_a_forged_tampered_or_foreign_token_is_refused() -> None:
    token = TrackingLinks(SETTINGS, ISSUE).token(42)
    other = Settings(secret_key=SecretStr("o" * 48), base_url=BASE)
    assert parse_token(other, token) is None
    for position in (0, 20, 31, 33, 54):
        changed = "A" if token[position] != "A" else "B"
        assert parse_token(SETTINGS, token[:position] + changed + token[position + 1 :]) is None
    ident, _, mac = token.partition(".")
    # Another delivery's id with this token's signature: refused.
    raw = bytearray(ident.encode())
    raw[-2] = ord("A") if raw[-2] != ord("A") else ord("B")
    assert parse_token(SETTINGS, f"{raw.decode()}.{mac}") is None
    for junk in ("", ".", "x" * 55, token + "x", token[:-1], "é" * 55, "\x00" * 55, "%2e" * 20):
        assert parse_token(SETTINGS, junk) is None


def test_a_token_whose_delivery_id_is_not_a_bigint_names_nothing() -> None:
    # 2**64 - 1 signed correctly: no bigint row can have it, so no query is made.
    assert parse_token(SETTINGS, TrackingLinks(SETTINGS, ISSUE).token(2**64 - 1)) is None


# -- the links ----------------------------------------------------------------------------


def test_the_trackable_links_are_the_distinct_literal_http_targets_in_order() -> None:
    assert tracked_links(BODY, BASE) == (
        "https://example.org/a?x=1&y=2",
        "https://example.org/b",
        "https://example.org/c",
    )


def test_rewriting_points_each_stored_target_at_its_index_and_leaves_the_rest() -> None:
    stored = tracked_links(BODY, BASE)
    rewritten = rewrite(BODY, stored, BASE)
    assert rewritten.count('href="{{ herald_click }}/0"') == 2
    assert "href='{{ herald_click }}/1'" in rewritten
    assert 'href="{{ herald_click }}/2"' in rewritten
    assert 'data-href="https://example.org/not-a-link"' in rewritten
    for kept in (
        "mailto:editor@example.org",
        "/relative",
        "javascript:alert(1)",
        "{{ unsubscribe_url }}",
        "https://example.org/u?e={{ subscriber.email }}",
        f"{BASE}/preferences?token=x",
        f"{BASE}/v/abc",
    ):
        assert f'href="{kept}"' in rewritten
    # Indexes come from the stored list: a target it lacks keeps its plain link.
    partial = rewrite(BODY, ("https://example.org/c",), BASE)
    assert 'href="{{ herald_click }}/0">C' in partial
    assert 'href="https://example.org/a?x=1&amp;y=2"' in partial
    assert rewrite(BODY, (), BASE) == BODY


def test_links_past_the_cap_stay_plain() -> None:
    body = "".join(f'<a href="https://example.org/{n}">{n}</a>' for n in range(MAX_LINKS + 5))
    stored = tracked_links(body, BASE)
    assert len(stored) == MAX_LINKS
    rewritten = rewrite(body, stored, BASE)
    assert f'href="{{{{ herald_click }}}}/{MAX_LINKS - 1}"' in rewritten
    assert f'href="https://example.org/{MAX_LINKS}"' in rewritten


def test_hostile_markup_finds_nothing_odd_and_never_raises() -> None:
    for body in (
        "<a href=>x</a>",
        '<a href="https://exa mple.org/">space</a>',
        '<a href="https://x.org/\nnext">newline</a>',
        '<a href="' + "https://x.org/" + "a" * 3000 + '">long</a>',
        "<a " * 10_000,
        '<a href="https://x.org/{% raw %}">raw</a>',
        '<A HREF="HTTPS://X.ORG/Upper">upper</A>',
    ):
        links = tracked_links(body, BASE)
        assert all(not re.search(r"[\s{]", url) and len(url) <= 2000 for url in links)
        rewrite(body, links, BASE)
    assert tracked_links('<A HREF="HTTPS://X.ORG/Upper">u</A>', BASE) == ("HTTPS://X.ORG/Upper",)


def test_a_body_of_unclosed_link_tags_is_read_in_one_pass() -> None:
    # 2 MiB of "<a " with no ">": each tag stops at the next "<", so this is linear (a
    # pattern scanning to the next ">" from every "<a" would take hours).
    body = "<a " * (2 * 1024 * 1024 // 3) + '<a href="https://example.org/x">x</a>'
    assert tracked_links(body, BASE) == ("https://example.org/x",)
    assert rewrite(body, ("https://example.org/x",), BASE).endswith(
        '<a href="{{ herald_click }}/0">x</a>'
    )


# -- machine opens and clicks -------------------------------------------------------------

SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Safari/605.1.15"
)
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)


@pytest.mark.parametrize(
    ("hit", "machine"),
    [
        (Hit(SAFARI, "203.0.113.9"), False),
        (Hit(GMAIL_PROXY, "66.249.84.1"), False),  # Gmail fetches when the reader opens
        (Hit("Mozilla/5.0", "203.0.113.9"), True),  # Apple Mail Privacy Protection
        (Hit(SAFARI, "17.58.100.1"), True),  # from Apple's own network
        (Hit(SAFARI, "2001:db8::1"), False),
        (Hit(SAFARI, "unknown"), False),
        (Hit("", "203.0.113.9"), True),
        (Hit("python-requests/2.31", None), True),
        (Hit("Mozilla/5.0 (compatible; Barracuda Sentinel)", None), True),
        (Hit(SAFARI, "203.0.113.9", head=True), True),
    ],
)
def test_machine_opens(hit: Hit, machine: bool) -> None:
    assert machine_open(hit) is machine


@pytest.mark.parametrize(
    "agent",
    [
        # Outlook for Windows fetches a message's images itself, when its reader opens it.
        "Mozilla/4.0 (compatible; ms-office; MSOffice 16)",
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.10827; Pro)",
    ],
)
def test_outlook_desktop_opens_are_people_s_and_office_s_link_checks_machines(agent: str) -> None:
    assert not machine_open(Hit(agent, "203.0.113.9"))
    # Office checks a link itself before handing it to the browser, whose click counts.
    assert machine_click(Hit(agent, "203.0.113.9"))
    assert machine_click(Hit("Microsoft Office Existence Discovery", "203.0.113.9"))


def test_machine_clicks_are_scanners_and_head_requests_not_apple_readers() -> None:
    assert not machine_click(Hit(SAFARI, "17.58.100.1"))  # a person clicking on an Apple network
    assert machine_click(Hit(SAFARI, None, head=True))
    assert machine_click(Hit("Mozilla/5.0 (compatible; proofpoint url defense)", None))
    assert machine_click(Hit("curl/8.5.0", None))
    assert not machine_click(Hit(SAFARI, "203.0.113.9"))


def test_a_cubot_phone_is_a_reader_and_bots_are_machines() -> None:
    """``bot`` as a word marks a crawler; Cubot is an Android phone maker (review finding)."""
    cubot = (
        "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/120.0.0.0 Mobile Safari/537.36"
    )
    assert not machine_click(Hit(cubot, "203.0.113.9"))
    assert not machine_open(Hit(cubot, "203.0.113.9"))
    for crawler in ("Googlebot/2.1", "Slackbot-LinkExpanding 1.0", "Mozilla/5.0 (compatible; bot)"):
        assert machine_click(Hit(crawler, "203.0.113.9")), crawler


# -- a tracked copy -----------------------------------------------------------------------


def _email(track: tuple[str, str] | None, tracked: bool = True) -> tuple[str, str]:
    compiled = compile_issue(
        "News",
        BODY,
        "Text https://example.org/b",
        tracked_links=tracked_links(BODY, BASE) if tracked else None,
        base_url=BASE,
    )
    message = issue_email(
        compiled,
        sender="news@herald.test",
        recipient="reader@example.org",
        name="Reader",
        unsubscribe_url=f"{BASE}/unsubscribe/one-click?token=t",
        base_url=BASE,
        view_url=f"{BASE}/v/view",
        track=track,
    )
    return message.html_body, message.text_body


def test_a_tracked_copy_has_the_pixel_and_its_links_through_the_click_route() -> None:
    pixel, click = TrackingLinks(SETTINGS, ISSUE).urls(9)
    html, text = _email((pixel, click))
    assert html.count(f'<img src="{pixel}"') == 1
    assert html.count(f'href="{click}/0"') == 2
    assert f'href="{click}/1"' in html
    assert f'href="{click}/2"' in html
    assert not re.search(r"href=[\"']https://example\.org/[abc]", html), "all go through Herald"
    # Herald's own links are never rewritten.
    assert f'href="{BASE}/unsubscribe/one-click?token=t"' in html
    assert f'href="{BASE}/v/view"' in html
    assert f'href="{BASE}/preferences?token=t' in html
    assert "/t/" not in text, "the text part keeps plain links"


@pytest.mark.parametrize("tracked", [True, False])
def test_an_untracked_copy_carries_no_pixel_and_plain_links(tracked: bool) -> None:
    # tracked=True, track=None: a reader who opted out of a tracked issue.
    html, _ = _email(None, tracked=tracked)
    assert "/t/o/" not in html
    assert "/t/c/" not in html
    assert "herald_click" not in html
    assert 'href="https://example.org/a?x=1&amp;y=2"' in html
    assert html == _email(None, tracked=False)[0]


def test_a_link_inside_template_code_is_neither_tracked_nor_broken() -> None:
    # Markup in a Jinja string is printed as written: a click variable rewritten into it
    # would reach the reader as the text "{{ herald_click }}/0", a dead link that only the
    # tracked copies have (the preview and test sends show it working).
    body = (
        "{% set cta = '<a href=\"https://example.org/buy\">Buy</a>' %}{{ cta|safe }} "
        "{{ '<a href=\"https://example.org/print\">P</a>'|safe }} "
        '<a class="{{ \'x\' }}" href="https://example.org/b">B</a>'
    )
    assert tracked_links(body, BASE) == ("https://example.org/b",)
    compiled = compile_issue(
        "News", body, "Text", tracked_links=tracked_links(body, BASE), base_url=BASE
    )
    pixel, click = TrackingLinks(SETTINGS, ISSUE).urls(9)
    html, _ = compiled.render(
        name="Reader",
        email="reader@example.org",
        unsubscribe_url=f"{BASE}/unsubscribe/one-click?token=t",
        track=(pixel, click),
    )
    assert "herald_click" not in html
    assert 'href="https://example.org/buy"' in html
    assert 'href="https://example.org/print"' in html
    assert f'href="{click}/0"' in html


def test_a_link_in_a_raw_block_is_neither_tracked_nor_broken() -> None:
    # {% raw %} prints its text as written, a click variable put in it too.
    body = (
        '{% raw %}<a href="https://example.org/raw">{{ x }}</a>{% endraw %} '
        '<a href="https://example.org/b">B</a>'
    )
    assert tracked_links(body, BASE) == ("https://example.org/b",)
    rewritten = rewrite(body, tracked_links(body, BASE), BASE)
    assert '<a href="https://example.org/raw">' in rewritten
    assert rewritten.endswith('<a href="{{ herald_click }}/0">B</a>')
