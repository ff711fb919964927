"""The issue template sandbox: every way a template can make work is bounded."""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc

import pytest
from jinja2 import TemplateError

from herald.core import timebox
from herald.core.errors import ValidationError
from herald.issues import sandbox
from herald.issues.rendering import check_renders, compile_issue, describe_error


def render(source: str, **variables: object) -> str:
    template = sandbox.sandbox(True).from_string(source)
    return sandbox.render_limited(template, variables, dict(template.globals))


@pytest.mark.parametrize(
    ("source", "limit"),
    [
        ("{{ 'x' * 10**9 }}", "repeating"),
        ("{{ 10**9 * 'x' }}", "repeating"),
        ("{{ [1] * 10**8 }}", "repeating"),
        ("{{ 2 ** (10**9) }}", "exponent"),
        ("{{ 7 ** 1000 }}", "exponent"),
        ("{% for i in range(100000) %}{% endfor %}", "range()"),
        ("{{ 'x'.center(10**9) }}", "too large as an argument"),
        ("{{ 'x'|center(10**9) }}", "too large as an argument"),
        ("{{ 'x'|indent(10**9) }}", "too large as an argument"),
        ("{{ '{:>999999999}'.format(1) }}", "format width"),
        ("{{ '%999999999s'|format(1) }}", "format width"),
        ("{{ '%999999999s' % 1 }}", "format width"),
        ("{% set s = 'x' * 900000 %}{{ s ~ s }}", "too large"),
        ("{% set s = 'x' * 900000 %}{{ s + s }}", "too long"),
        ("{% set s = 'x' * 100000 %}{{ s|replace('x', s) }}", "replace()"),
        ("{% set s = 'x' * 100000 %}{{ s.replace('x', s) }}", "replace()"),
        ("{{ (['x' * 100000] * 10000)|join }}", "join()"),
        ("{{ ('x' * 100000).join('y' * 10000) }}", "join()"),
        ("{{ ('\n' * 100000)|indent(100) }}", "indent()"),
        ("{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}", "rendered body"),
    ],
)
def test_work_past_a_limit_is_refused_before_it_is_done(source: str, limit: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError, match="the template limits are") as caught:
            render(source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert limit in str(caught.value)
    # Refused up front, not after building gigabytes (counted in bytes, not timed: the
    # time would measure the machine's load; a few MiB at most today).
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB allocated before the refusal"


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(100) %}{{ i }}{% endfor %}",
        "{{ 'ab' * 3 }}{{ 2 ** 10 }}{{ 'x'|center(20) }}{{ '{:>5}'.format(1) }}",
        "{{ ['a', 'b']|join(', ') }}{{ 'a-b'.replace('-', '+') }}{{ 'x\ny'|indent(2) }}",
        "{% set ns = namespace(n=0) %}{% for i in range(10) %}{% set ns.n = ns.n + i %}"
        "{% endfor %}{{ ns.n }}{{ '%05.1f' % 3.14159 }}",
    ],
)
def test_ordinary_templates_render_as_before(source: str) -> None:
    plain = sandbox.sandbox(True).from_string(source).render()
    assert render(source) == plain


def test_lipsum_which_makes_megabytes_from_a_number_is_gone() -> None:
    with pytest.raises(TemplateError):
        render("{{ lipsum(100000) }}")


def test_a_loop_that_only_loops_is_stopped_by_the_time_limit() -> None:
    compiled = compile_issue(
        "t",
        "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}",
        "text",
    )
    started = time.perf_counter()
    with pytest.raises(ValidationError, match="rendering took longer than 2 seconds"):
        check_renders(compiled)
    assert time.perf_counter() - started < sandbox.RENDER_SECONDS + 3


def test_any_exception_of_a_sample_render_is_a_validation_error_naming_it() -> None:
    compiled = compile_issue("t", "line one\n{{ 10 // (subscriber.name|length - 17) }}", "x")
    with pytest.raises(ValidationError) as caught:
        check_renders(compiled)  # "Sample Subscriber" has 17 characters
    assert caught.value.message == (
        "the issue cannot be rendered: ZeroDivisionError: integer division or modulo by zero"
        " (line 2)"
    )


def test_deep_nesting_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="nested too deeply"):
        compile_issue("t", "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "x")


def test_describe_error_names_the_template_line() -> None:
    template = sandbox.sandbox(False).from_string("a\nb\n{{ subscriber.name.encode('ascii') }}")
    with pytest.raises(UnicodeEncodeError) as caught:
        sandbox.render_limited(template, {"subscriber": {"name": "José"}}, {})
    assert describe_error(caught.value).startswith("UnicodeEncodeError: 'ascii' codec")
    assert describe_error(caught.value).endswith("(line 3)")


def test_run_each_gives_every_item_its_own_deadline() -> None:
    def work(seconds: float) -> float:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pass
        return seconds

    outcomes = timebox.run_each([0.0, 5.0, 0.01, 5.0, 0.0], work, 0.3)
    assert outcomes[0] == 0.0
    assert isinstance(outcomes[1], timebox.TimeLimitExceeded)
    assert outcomes[2] == 0.01
    assert isinstance(outcomes[3], timebox.TimeLimitExceeded)
    assert outcomes[4] == 0.0


def test_an_interrupt_never_escapes_after_the_limit() -> None:
    # Items that finish right around their deadline: nothing may leak out of run_each.
    for _ in range(20):
        timebox.run_each([0.0] * 50, lambda _: time.sleep(0.001), 0.001)
    time.sleep(0.1)  # a stray interrupt would be raised here, failing the test


def test_a_swallowed_interrupt_is_repeated_until_the_item_stops() -> None:
    # CPython may deliver the interrupt inside a gc callback or a finaliser, which
    # swallows it ("Exception ignored in ..."); the loop must still be stopped.
    def work(_: None) -> str:
        swallowed = 0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                while time.monotonic() < deadline:
                    pass
            except timebox.TimeLimitExceeded:
                if swallowed == 2:
                    raise
                swallowed += 1  # what an "Exception ignored" callback does
        return "ran to the end"

    (outcome,) = timebox.run_each([None], work, 0.2)
    # Not "ran to the end": the repeated interrupt stopped it before its 3 s were up.
    assert isinstance(outcome, timebox.TimeLimitExceeded)


PROFILE_AFTER_A_TIME_LIMIT = """
import asyncio
from pyinstrument import Profiler
from herald.core import timebox

def spin():
    while True:
        pass

async def main():
    try:
        await asyncio.to_thread(timebox.run_limited, spin, 0.1)
    except timebox.TimeLimitExceeded:
        pass
    await asyncio.to_thread(timebox.run_limited, lambda: None, 1.0)
    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    await asyncio.sleep(0.2)
    profiler.stop()
    print("slept")

asyncio.run(main())
"""


def test_the_time_box_leaves_no_interpreter_wide_signal_behind() -> None:
    # Clearing a pending interrupt with PyThreadState_SetAsyncExc(id, NULL) left CPython's
    # "async exception pending" signal up for good: under a profiler's hook the event loop
    # then spun forever inside asyncio.sleep (the admin profile endpoint wedged the process).
    done = subprocess.run(
        [sys.executable, "-c", PROFILE_AFTER_A_TIME_LIMIT],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "slept"
