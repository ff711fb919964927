"""The layout's content CSS inlined into an issue's template source: Jinja syntax survives."""

from __future__ import annotations

import pytest
from jinja2.sandbox import SandboxedEnvironment

from herald.email.inline import inline_css, inline_template

CSS = "p { color: #111; } a { color: #3451c7; } td { padding: 4px; } li { margin: 0; }"


def render(template: str, **context: object) -> str:
    return SandboxedEnvironment(autoescape=True).from_string(template).render(**context)


def test_css_is_inlined_into_a_fragment() -> None:
    assert inline_css("<p>x</p>", CSS) == '<p style="color:#111">x</p>'


def test_an_existing_style_attribute_wins() -> None:
    assert inline_css('<p style="color: red">x</p>', CSS) == '<p style="color:red">x</p>'


@pytest.mark.parametrize(
    "template",
    [
        "<p>Hi {{ subscriber.name }}, {{ subscriber.email|upper }}!</p>",
        '<p><a href="{{ unsubscribe_url }}?from=mail&amp;x=1">leave</a></p>',
        '<p><a href="https://x.test/{{ subscriber.name|urlencode }}" title="{{ "q" }}">x</a></p>',
        "<ul>{% for item in items %}<li>{{ item }}</li>{% endfor %}</ul>",
        "<table><tbody>{% for row in rows %}<tr><td>{{ row }}</td></tr>{% endfor %}"
        "</tbody></table>",
        "<p>{% if items|length > 1 and 1 < 2 %}many{% else %}few{% endif %}</p>",
        '<p {% if subscriber.name %}class="named"{% endif %}>x</p>',
        '<p class="{% if subscriber.name %}named{% endif %}">x</p>',
        "{# a comment <b> #}<p>{%- if true -%} trimmed {%- endif -%}</p>",
        "<p>{{ '<b>' }} and {{ '&' }}</p>{% raw %}{{ kept }}{% endraw %}",
    ],
)
def test_jinja_survives_inlining(template: str) -> None:
    inlined = inline_template(template, CSS)
    context = {
        "subscriber": {"name": "Ada <x>", "email": "ada@example.org"},
        "unsubscribe_url": "https://n.test/u?t=1",
        "items": ["one", "two"],
        "rows": ["a", "b"],
    }
    plain = render(template, **context)
    styled = render(inlined, **context)
    assert "style=" in inlined
    assert _strip_styles(styled) == _strip_styles(plain)


def _strip_styles(html: str) -> str:
    import re

    return re.sub(r'\s*style="[^"]*"', "", html).replace('" >', '">').replace(" >", ">")


def test_rows_stay_inside_the_table() -> None:
    """Rows between Jinja tags stay in place (an HTML parser moves text out of a table, not
    comments). Without a ``<tbody>`` the parser adds one after the loop's start: each row
    then opens a body of its own, which is valid HTML and renders the same."""
    inlined = inline_template(
        "<table>{% for r in rows %}<tr><td>{{ r }}</td></tr>{% endfor %}</table>", CSS
    )
    assert inlined.index("{% for r in rows %}") > inlined.index("<table")
    assert inlined.index("{% endfor %}") < inlined.index("</table>")
    assert '<td style="padding:4px">{{ r }}</td>' in inlined
    rendered = render(inlined, rows=["a", "b"])
    assert rendered.count("<tr>") == 2
    assert rendered.endswith("</tbody></table>")


def test_a_template_without_jinja_is_inlined_as_it_is() -> None:
    assert inline_template("<p>x</p>", CSS) == '<p style="color:#111">x</p>'


def test_openers_without_closers_cost_one_pass() -> None:
    import time

    source = "<p>" + "{{ {% {#" * 200_000 + "</p>"
    started = time.perf_counter()
    inlined = inline_template(source, CSS)
    assert time.perf_counter() - started < 2
    assert inlined.startswith('<p style="color:#111">{{ {% {#')


def test_an_editors_own_styles_are_inlined_and_media_queries_kept() -> None:
    inlined = inline_template(
        "<style>.note { color: green } @media (max-width: 400px) { .note { color: blue } }"
        '</style><p class="note">{{ x }}</p>',
        CSS,
    )
    assert '<p class="note" style="color:green">{{ x }}</p>' in inlined
    assert "<style>" in inlined
    assert "@media (max-width: 400px)" in inlined
