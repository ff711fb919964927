"""Email layouts: compiled once, validated, split into segments and tokens, rendered with
every value but the content escaped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from herald.core.config import Settings
from herald.core.errors import ValidationError
from herald.email import layout as layout_module
from herald.email.layout import (
    PREHEADER_FILL,
    Branding,
    compile_layout,
    default_layout,
    default_source,
    lighten,
)

MINIMAL = """<mjml><mj-body><mj-section><mj-column>
<mj-text>{{ content }}</mj-text>
<mj-text>{{#view_url}}<a href="{{ view_url }}">View</a>{{/view_url}}
{{^view_url}}no view{{/view_url}}
<a href="{{ unsubscribe_url }}">Unsubscribe</a> {{ newsletter_name }}</mj-text>
</mj-column></mj-section></mj-body></mjml>"""
HOSTILE = "<script>alert(\"x\")</script> & 'quotes'"


def render(**values: str) -> str:
    defaults = {"title": "T", "reason": "R", "unsubscribe_url": "https://n.test/u?t=1"}
    return default_layout().render(content="<p>C</p>", **{**defaults, **values})


def test_the_default_layout_is_a_complete_responsive_document() -> None:
    html = render(preheader="First words")
    assert html.startswith("<!doctype html><html")
    assert html.rstrip().endswith("</body></html>")
    assert "<head>" in html
    assert "<meta name='color-scheme' content='light dark'" in html
    assert "<meta name='supported-color-schemes' content='light dark'" in html
    assert "<meta name='viewport' content='width=device-width, initial-scale=1'>" in html
    assert "prefers-color-scheme:dark" in html
    assert "max-width:600px" in html
    assert "max-width:479px" in html  # the phone rules
    assert "<title>T</title>" in html
    assert not re.search(r"\{\{\s*[#^/]?\w+\s*\}\}", html)  # no placeholder left


def test_the_preheader_is_the_hidden_div_right_after_body() -> None:
    html = render(preheader="What is new this week")
    after_body = html[html.index("<body") :].split(">", 1)[1]
    assert after_body.startswith("<div style='display:none;")
    hidden = after_body[: after_body.index("</div>")]
    assert hidden.endswith("What is new this week" + PREHEADER_FILL)


def test_the_footer_carries_the_reason_and_the_optional_links() -> None:
    html = render(reason="You receive this because you subscribed to Acme.")
    assert "You receive this because you subscribed to Acme." in html
    assert '<a href="https://n.test/u?t=1"' in html
    assert ">Unsubscribe</a>" in html
    assert "View in browser" not in html
    assert "Manage preferences" not in html
    full = render(view_url="https://n.test/v/1", preferences_url="https://n.test/p")
    assert '<a href="https://n.test/v/1"' in full
    assert "View in browser</a>" in full
    assert '<a href="https://n.test/p"' in full
    assert "Manage preferences</a>" in full


def test_branding_is_compiled_into_the_layout() -> None:
    plain = default_layout().render(content="", unsubscribe_url="u")
    assert "Herald newsletter" in plain
    assert "<img" not in plain
    branded = default_layout(
        Branding(
            name="Acme Weekly",
            accent="#aa3300",
            logo_url="https://cdn.acme.test/logo.png",
            footer_address="Acme, 1 Main St",
        )
    ).render(content="", unsubscribe_url="u")
    assert 'src="https://cdn.acme.test/logo.png"' in branded
    assert "alt='Acme Weekly'" in branded
    assert "Acme, 1 Main St" in branded
    assert "#aa3300" in branded
    assert "#3451c7" not in branded
    assert lighten("#aa3300", 0.45) in branded  # the accent for dark mode
    assert "a{color:#aa3300" in default_layout(Branding(accent="#aa3300")).content_css.replace(
        " ", ""
    )


def test_branding_values_are_escaped_and_cannot_inject_placeholders() -> None:
    html = default_layout(Branding(name=HOSTILE + " {{ content }}", footer_address="<b>")).render(
        content="CONTENT", unsubscribe_url="u"
    )
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "<b>" not in html
    assert html.count("CONTENT") == 1


@pytest.mark.parametrize("field", ["title", "preheader", "reason", "unsubscribe_url", "view_url"])
def test_every_token_value_is_escaped(field: str) -> None:
    html = render(**{field: HOSTILE})
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;quotes&#x27;" in html


def test_the_content_goes_in_as_html() -> None:
    assert "<p>C</p>" in render()


def test_a_bound_layout_renders_what_the_layout_renders() -> None:
    layout = default_layout()
    values = {"unsubscribe_url": "https://n.test/u?a=1&b=2", "view_url": "https://n.test/v"}
    for present in ({"content", "unsubscribe_url", "preheader"}, set(values) | {"content"}):
        bound = layout.bind(frozenset(present), title="T <x>", reason="R")
        given = {k: v for k, v in values.items() if k in present}
        preheader = "Pre" if "preheader" in present else ""
        assert bound.render(content="<p>C</p>", preheader=preheader, **given) == layout.render(
            content="<p>C</p>", preheader=preheader, title="T <x>", reason="R", **given
        )
    bound = layout.bind(frozenset({"content", "unsubscribe_url"}), title="T", reason="R")
    assert set(bound.names) == {"content", "unsubscribe_url"}
    assert len(bound.literals) == len(bound.names) + 1


def test_sections_and_inverted_sections() -> None:
    layout = compile_layout(MINIMAL, Branding(name="Acme"))
    without = layout.render(content="", unsubscribe_url="u")
    assert "no view" in without
    assert ">View<" not in without
    with_view = layout.render(content="", unsubscribe_url="u", view_url="https://v")
    assert "no view" not in with_view
    assert '<a href="https://v">View</a>' in with_view
    assert "Acme" in without
    assert layout.tokens == {"content", "view_url", "unsubscribe_url"}


def test_layouts_are_compiled_once_per_source_and_branding() -> None:
    assert default_layout() is default_layout()
    assert default_layout(Branding(name="A")) is default_layout(Branding(name="A"))
    assert default_layout(Branding(name="A")) is not default_layout(Branding(name="B"))


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (MINIMAL.replace("{{ content }}", ""), r"no \{\{ content \}\} placeholder"),
        (
            MINIMAL.replace('<a href="{{ unsubscribe_url }}">Unsubscribe</a>', ""),
            r"no \{\{ unsubscribe_url \}\} placeholder",
        ),
        (MINIMAL.replace("</mj-column>", ""), "does not compile"),
        ("<mjml><mj-body>{{ content }} {{ unsubscribe_url }}", "does not compile"),
        (MINIMAL.replace("{{ content }}", "{{ contnet }}"), r"unknown placeholder \{\{ contnet"),
        (MINIMAL.replace("{{/view_url}}\n{{^view_url}}", "{{^view_url}}"), "never closes"),
        (MINIMAL.replace("{{#view_url}}", ""), "without opening it"),
        ("x" * 200_001, "longer than"),
    ],
)
def test_a_broken_layout_is_refused_naming_the_problem(source: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        compile_layout(source, Branding())


def test_the_default_layout_validates_and_keeps_only_email_tokens() -> None:
    layout = compile_layout(default_source(), Branding())
    assert {"content", "unsubscribe_url", "preheader", "title", "reason"} <= layout.tokens


def test_branding_comes_from_the_settings() -> None:
    assert Branding.from_settings(Settings()).name == "Herald newsletter"
    sender = Settings(email={"sender": "Acme Weekly <news@acme.test>"})
    assert Branding.from_settings(sender).name == "Acme Weekly"
    named = Settings(
        email={"sender": "Acme Weekly <news@acme.test>"},
        newsletter={"name": "The Acme Letter", "accent": "#112233", "footer_address": " Acme "},
    )
    branding = Branding.from_settings(named)
    assert (branding.name, branding.accent, branding.footer_address) == (
        "The Acme Letter",
        "#112233",
        "Acme",
    )


@pytest.mark.parametrize(
    "newsletter", [{"accent": "blue"}, {"accent": "#12345"}, {"logo_url": "/logo.png"}]
)
def test_bad_branding_settings_are_refused(newsletter: dict[str, str]) -> None:
    from pydantic import ValidationError as SettingsError

    with pytest.raises(SettingsError):
        Settings(newsletter=newsletter)


class _Attributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.seen: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, attrs))


def _attributes(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = _Attributes()
    parser.feed(html)
    parser.close()
    return parser.seen


def test_single_quoting_attributes_changes_no_element_or_value() -> None:
    import mjml

    source = default_source().replace("{{", "[").replace("}}", "]")
    raw = mjml.mjml2html(source, disable_comments=True, fonts={})
    requoted = layout_module._DOUBLE_QUOTED.sub(r"\1='\2'", raw)
    assert requoted.count('"') < raw.count('"') / 5
    assert _attributes(requoted) == _attributes(raw)
    hostile = '<a title="it\'s" href="x?a=1&amp;b=2" data-x="">'
    assert _attributes(layout_module._DOUBLE_QUOTED.sub(r"\1='\2'", hostile)) == _attributes(
        hostile
    )


def test_a_compiled_layout_double_quotes_only_its_links() -> None:
    html = render(view_url="https://n.test/v/1")
    quoted = re.findall(r'(\S+)="[^"]*"', html)
    assert quoted
    assert set(quoted) == {"href"}, quoted


CLOSE = "</mj-column></mj-section></mj-body></mjml>"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            "{{ content }}{{#unsubscribe_url}}<a href='#'>Unsubscribe</a>{{/unsubscribe_url}}",
            "no unsubscribe link",
        ),
        (
            "{{ content }}{{#view_url}}<a href='{{ unsubscribe_url }}'>U</a>{{/view_url}}",
            "no unsubscribe link",
        ),
        (
            "{{ content }}{{^unsubscribe_url}}<a href='{{ unsubscribe_url }}'>U</a>"
            "{{/unsubscribe_url}}",
            "no unsubscribe link",
        ),
        ("{{ content }}<span title='{{ unsubscribe_url }}'>U</span>", "no unsubscribe link"),
        (
            "{{#view_url}}{{ content }}{{/view_url}}<a href='{{ unsubscribe_url }}'>U</a>",
            "does not show {{ content }}",
        ),
    ],
)
def test_a_layout_must_show_the_content_and_an_unsubscribe_link_in_every_email(
    body: str, problem: str
) -> None:
    source = f"<mjml><mj-body><mj-section><mj-column><mj-text>{body}</mj-text>{CLOSE}"
    with pytest.raises(ValidationError, match=re.escape(problem)):
        compile_layout(source)


def test_an_unsubscribe_link_inside_its_own_section_is_enough() -> None:
    body = (
        "{{ content }}{{#unsubscribe_url}}<a href='{{ unsubscribe_url }}'>U</a>{{/unsubscribe_url}}"
    )
    source = f"<mjml><mj-body><mj-section><mj-column><mj-text>{body}</mj-text>{CLOSE}"
    compile_layout(source)
