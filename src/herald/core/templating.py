"""One Jinja2 environment for every page and email; each feature ships its templates.

Every package listed here must hold a tracked ``templates/`` folder: git does not keep empty
folders, so a package without templates would break a fresh clone (see test_templating).
"""

from __future__ import annotations

from functools import cache

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, select_autoescape

TEMPLATE_PACKAGES = (
    "herald.web",
    "herald.subscriptions",
    "herald.auth",
    "herald.admin",
    "herald.imports",
    "herald.lists",
    "herald.preferences",
    "herald.archive",
)


@cache
def environment() -> Environment:
    return Environment(
        loader=ChoiceLoader([PackageLoader(package, "templates") for package in TEMPLATE_PACKAGES]),
        autoescape=select_autoescape(["html", "htm", "xml"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        enable_async=False,
    )


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)
