"""The README's configuration tables name every setting of the model, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from herald.core.config import Settings
from tests.unit.test_architecture import SRC

README = SRC.parent / "README.md"


def model_variables(model: type[BaseModel], prefix: str = "HERALD_") -> set[str]:
    names: set[str] = set()
    for field_name, field in model.model_fields.items():
        name = f"{prefix}{field_name.upper()}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= model_variables(annotation, name + "__")
        else:
            names.add(name)
    return names


def readme_variables(text: str) -> set[str]:
    """``HERALD_…`` names in the first cell of table rows; ``__PORT`` after
    ``HERALD_EMAIL__SMTP__HOST`` in the same cell means ``HERALD_EMAIL__SMTP__PORT``."""
    names: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.strip("|").split("|")[0]
        prefix = ""
        for name in re.findall(r"`([A-Z_]+)`", first_cell):
            if name.startswith("HERALD_"):
                names.add(name)
                prefix = name.rsplit("__", 1)[0] if "__" in name else "HERALD"
            elif name.startswith("__") and prefix:
                names.add(prefix + name if prefix != "HERALD" else "HERALD_" + name[2:])
    return names


def test_the_reader_expands_shorthand() -> None:
    row = (
        "| `HERALD_EMAIL__SMTP__HOST`, `__PORT` | relay | — |\n"
        "| `HERALD_HOST`, `HERALD_PORT` | x | y |"
    )
    assert readme_variables(row) == {
        "HERALD_EMAIL__SMTP__HOST",
        "HERALD_EMAIL__SMTP__PORT",
        "HERALD_HOST",
        "HERALD_PORT",
    }


def test_the_model_is_walked() -> None:
    names = model_variables(Settings)
    assert {"HERALD_ENV", "HERALD_EMAIL__SMTP__TLS", "HERALD_DELIVERY__LEASE_SECONDS"} <= names


def test_the_readme_lists_every_setting_and_no_other() -> None:
    documented = readme_variables(Path(README).read_text(encoding="utf-8"))
    actual = model_variables(Settings)
    assert not actual - documented, (
        f"settings missing from the README: {sorted(actual - documented)}"
    )
    assert not documented - actual, f"README names unknown settings: {sorted(documented - actual)}"
