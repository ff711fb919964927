"""The Jinja2 sandbox that issue bodies are rendered in, with resource limits.

Jinja's ``ImmutableSandboxedEnvironment`` keeps templates away from Python's
internals, but not from the CPU and memory: ``{{ 'x' * 10**9 }}``, a nested
``range(100000)`` loop or a doubling concatenation freeze the process that
renders them. This environment bounds every way a template can make work:

* ``range()`` yields at most :data:`MAX_RANGE` items;
* repetition (``*``), concatenation (``+``, ``~``) and ``%``-formatting whose
  result would pass :data:`MAX_STRING` characters are refused before they run;
* ``**`` takes exponents up to :data:`MAX_EXPONENT`;
* numbers above :data:`MAX_ARGUMENT` are refused as arguments of calls and
  filters (``'x'.center(10**9)``, ``|indent(10**9)``), and so are format widths
  and precisions above it (``'{:>999999999}'.format(x)``);
* the rendered body is at most :data:`MAX_RENDERED` characters;
* and each render is time-limited by the caller (:data:`RENDER_SECONDS`, see
  :mod:`herald.core.timebox`), which catches what is left: loops that do nothing
  but loop.

Every refusal is a ``SecurityError`` (a ``TemplateError``) naming the limit, so an
editor sees exactly what to change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import cache, wraps
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_RANGE = 10_000
MAX_STRING = 1_000_000
MAX_RENDERED = 3_000_000  # a 2 MiB body, its personalisation and the footer
MAX_EXPONENT = 100
MAX_ARGUMENT = 100_000
RENDER_SECONDS = 2.0

LIMITS_HELP = (
    f"ranges of at most {MAX_RANGE:,} items, strings of at most {MAX_STRING:,} characters, "
    f"exponents up to {MAX_EXPONENT}, numbers up to {MAX_ARGUMENT:,} as arguments, "
    f"at most {MAX_RENDERED:,} characters per rendered body and "
    f"{RENDER_SECONDS:g} seconds per email"
)

# A width or precision in a format string: "{:>123}", "{0:.5f}", "%-20s", "%.3f".
_FORMAT_NUMBERS = re.compile(r"(?:[:%][^}\s%]*?)(\d{6,})")


def _refuse(what: str) -> SecurityError:
    return SecurityError(f"{what} (the template limits are: {LIMITS_HELP})")


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple) else None


def check_size(value: Any) -> Any:
    size = _sized(value)
    if size is not None and size > MAX_STRING:
        raise _refuse(f"a value of {size:,} characters or items is too large")
    return value


def _check_number(value: Any) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if abs(value) > MAX_ARGUMENT:
            raise _refuse(f"the number {value:g} is too large as an argument")
    elif isinstance(value, str) and ("{" in value or "%" in value):
        _check_format(value)


def _check_format(template: str) -> None:
    match = _FORMAT_NUMBERS.search(template)
    if match:
        raise _refuse(f"the format width {match.group(1)} is too large")


def _check_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in args:
        _check_number(value)
    for value in kwargs.values():
        _check_number(value)


def bounded_range(*args: int) -> range:
    for value in args:
        _check_number(value)
    items = range(*args)
    if len(items) > MAX_RANGE:
        raise _refuse(f"range() of {len(items):,} items is too long")
    return items


def _product(left: Any, right: Any) -> Any:
    for sequence, times in ((left, right), (right, left)):
        size = _sized(sequence)
        if size is not None and isinstance(times, int) and size * times > MAX_STRING:
            raise _refuse(f"repeating {size:,} characters {times:,} times is too much")
    return left * right


def _power(base: Any, exponent: Any) -> Any:
    too_large = isinstance(exponent, int | float) and abs(exponent) > MAX_EXPONENT
    if too_large and not (isinstance(base, int | float) and abs(base) <= 1):
        raise _refuse(f"the exponent {exponent:g} is too large")
    return base**exponent


def _sum(left: Any, right: Any) -> Any:
    sizes = (_sized(left), _sized(right))
    if None not in sizes and sum(s or 0 for s in sizes) > MAX_STRING:
        raise _refuse("joining these values makes a string that is too long")
    return left + right


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        _check_format(left)
        return check_size(left % right)
    return left % right


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "*": _product,
    "**": _power,
    "+": _sum,
    "%": _modulo,
}


class _CheckedCodeGenerator(CodeGenerator):
    """Concatenation (``~`` and template strings joined by it) is checked for size: it
    compiles to a plain ``str.join`` that no sandbox hook sees otherwise."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802 - Jinja's name
        self.write("environment.check_size(")
        super().visit_Concat(node, frame)
        self.write(")")


def _total_length(items: Any) -> int:
    if isinstance(items, str):
        return len(items)
    if isinstance(items, list | tuple | range):
        return sum(len(i) if isinstance(i, str) else 20 for i in items)
    return 0


def _expansion(name: str, values: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Characters that ``replace``/``join``/``indent`` would produce, estimated before
    running them: one C call can otherwise build gigabytes from two small inputs.
    ``values`` is the subject first, then the arguments."""
    if name in {"replace", "do_replace"} and len(values) >= 3:
        text, old, new = values[0], values[1], values[2]
        if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
            occurrences = text.count(old) if old else len(text) + 1
            return len(text) + occurrences * max(0, len(new) - len(old))
    if name in {"join", "do_join"} and values:
        if name == "join":  # separator.join(items)
            separator, items = values[0], values[1] if len(values) > 1 else ()
        else:  # items|join(separator)
            items, separator = values[0], values[1] if len(values) > 1 else kwargs.get("d", "")
        count = len(items) if isinstance(items, str | list | tuple | range) else 0
        return _total_length(items) + count * len(str(separator))
    if name == "do_indent" and values and isinstance(values[0], str):
        width = values[1] if len(values) > 1 else kwargs.get("width", 4)
        size = len(width) if isinstance(width, str) else int(width or 0)
        return len(values[0]) + (values[0].count("\n") + 1) * size
    return 0


def _check_expansion(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    size = _expansion(name, args, kwargs)
    if size > MAX_STRING:
        raise _refuse(f"{name.removeprefix('do_')}() would make {size:,} characters")


def _bounded_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    name = func.__name__

    @wraps(func)  # keeps ``jinja_pass_arg`` (context/environment filters)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = args[skip:]  # the filtered value, then the filter's arguments
        _check_arguments(values[1:], kwargs)
        if name == "do_format" and values and isinstance(values[0], str):
            _check_format(values[0])
        _check_expansion(name, values, kwargs)
        return check_size(func(*args, **kwargs))

    return wrapper


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """See the module docstring."""

    intercepted_binops = frozenset(_BINOPS)
    code_generator_class = _CheckedCodeGenerator

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(autoescape=autoescape, undefined=StrictUndefined)
        self.filters = {name: _bounded_filter(f) for name, f in self.filters.items()}
        self.globals["range"] = bounded_range
        del self.globals["lipsum"]  # builds up to megabytes from one small number
        self.check_size = check_size

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str) and getattr(value, "__name__", "") in {"format", "format_map"}:
            _check_format(owner)
        return super().wrap_str_format(value)

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:  # noqa: ARG002
        return _BINOPS[operator_](left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _check_arguments(args, kwargs)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            if name in {"format", "format_map"}:
                _check_format(owner)
            _check_expansion(name, (owner, *args), kwargs)
        return check_size(super().call(__context, __obj, *args, **kwargs))


@cache
def sandbox(autoescape: bool) -> LimitedSandbox:
    return LimitedSandbox(autoescape=autoescape)


def render_limited(template: Any, variables: dict[str, Any], flat_globals: dict[str, Any]) -> str:
    """Render ``template`` with ``variables``, refusing output past :data:`MAX_RENDERED`.

    The context is built from globals flattened once per template (``Template.render``
    copies its ChainMap of globals per call, ~60 % of a recipient's render; BENCHMARKS.md
    P4); errors propagate as raised.
    """
    environment = template.environment
    context = environment.context_class(
        environment, {**flat_globals, **variables}, template.name, template.blocks
    )
    return _join(template.root_render_func(context))


def _join(pieces: Iterator[str]) -> str:
    parts: list[str] = []
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > MAX_RENDERED:
            raise _refuse(f"the rendered body passes {MAX_RENDERED:,} characters")
        parts.append(piece)
    return "".join(parts)
