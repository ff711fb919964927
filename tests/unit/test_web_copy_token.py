"""The 'view in browser' token: compact, one reader of one issue, forgeable by no one."""

from __future__ import annotations

import uuid

from pydantic import SecretStr

from herald.core.config import Settings
from herald.issues.rendering import compile_issue
from herald.issues.webcopy import (
    ROBOTS_META,
    ViewLinks,
    make_token,
    parse_token,
    view_url,
    with_robots_meta,
)

SETTINGS = Settings(secret_key=SecretStr("k" * 48), base_url="https://news.herald.test")
ISSUE, READER = uuid.uuid4(), uuid.uuid4()


def test_a_token_names_its_issue_and_reader_and_is_short() -> None:
    token = make_token(SETTINGS, ISSUE, READER)
    assert len(token) == 66
    assert parse_token(SETTINGS, token) == (ISSUE, READER)
    assert view_url(SETTINGS, ISSUE, READER) == f"https://news.herald.test/v/{token}"
    links = ViewLinks(SETTINGS, ISSUE)  # the worker's: the same tokens, made faster
    for reader in (READER, uuid.uuid4(), uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)):
        url = links(reader)
        assert url == f"https://news.herald.test/v/{make_token(SETTINGS, ISSUE, reader)}"
        assert parse_token(SETTINGS, url.rsplit("/", 1)[1]) == (ISSUE, reader)


def test_another_key_or_a_changed_character_is_refused() -> None:
    token = make_token(SETTINGS, ISSUE, READER)
    other = Settings(secret_key=SecretStr("o" * 48), base_url="https://news.herald.test")
    assert parse_token(other, token) is None
    for position in (0, 42, 44, 65):
        swapped = "B" if token[position] == "A" else "A"
        assert parse_token(SETTINGS, token[:position] + swapped + token[position + 1 :]) is None


def test_junk_is_refused_without_raising() -> None:
    for junk in ("", ".", "x" * 66, "é" * 66, "A" * 43 + "." + "é" * 22, "A" * 43 + ":" + "A" * 22):
        assert parse_token(SETTINGS, junk) is None


def test_the_email_links_its_copy_in_the_html_and_the_text_footer() -> None:
    compiled = compile_issue("Title", "<p>Hi {{ subscriber.name }}</p>", "Hi")
    url = view_url(SETTINGS, ISSUE, READER)
    html, text = compiled.render(name="Ada", email="a@x.test", unsubscribe_url="u", view_url=url)
    assert f'href="{url}"' in html
    assert f"\nView in your browser: {url}\n" in text
    _, plain = compiled.render(name="Ada", email="a@x.test", unsubscribe_url="u")
    assert "View in your browser" not in plain


def test_the_page_carries_a_robots_meta_in_its_head() -> None:
    assert with_robots_meta("<html><head><title>t</title>") == (
        f"<html><head>{ROBOTS_META}<title>t</title>"
    )
