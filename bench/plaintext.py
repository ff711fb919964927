"""Plain-text converters for the text part of emails: Herald's own vs html2text vs inscriptis.

Each converter, set up as close to Herald's rules as its options allow, turns the realistic
issues of tests/fixtures/plaintext/ (four Markdown issues rendered by Herald's Markdown and
one pasted HTML newsletter) into text. For each it prints the time per issue (median of
ROUNDS rounds), rule checks on the output (Markdown link or heading syntax left in, blank
lines between list items, lines wider than 78 columns that could have been wrapped), the
time and outcome on hostile input (10,000-deep nesting, a 2 MiB body), and the size it
adds to an installation. ``--show`` prints every output, to judge by eye.

    .venv/bin/python bench/plaintext.py [--show]
        # html2text and inscriptis are not Herald's dependencies: a converter whose
        # package is missing is skipped (pip install html2text inscriptis to compare)
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from herald.email.plaintext import html_to_text  # noqa: E402
from herald.email.text_lines import columns  # noqa: E402
from herald.issues.rendering import markdown_to_html  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "plaintext"
ROUNDS = 7
WIDTH = 78
HOSTILE_SECONDS = 60.0

Converter = Callable[[str], str]


def html2text_converter() -> Converter:
    import html2text

    def convert(html: str) -> str:
        h = html2text.HTML2Text(bodywidth=WIDTH)
        h.ul_item_mark = "-"
        h.images_to_alt = True
        h.ignore_emphasis = True
        h.wrap_links = False
        h.wrap_list_items = True
        h.mark_code = False
        h.pad_tables = False  # True aligns columns, but raises IndexError on nested tables
        return str(h.handle(html))

    return convert


def inscriptis_converter() -> Converter:
    from inscriptis import get_text
    from inscriptis.model.config import ParserConfig

    config = ParserConfig(display_links=True, display_images=True)
    return lambda html: str(get_text(html, config))


CONVERTERS: dict[str, Callable[[], Converter]] = {
    "herald": lambda: html_to_text,
    "html2text": html2text_converter,
    "inscriptis": inscriptis_converter,
}
PACKAGES = {"herald": [], "html2text": ["html2text"], "inscriptis": ["inscriptis", "lxml"]}


def issues() -> dict[str, str]:
    found = {}
    for path in sorted(FIXTURES.glob("issue-*")):
        raw = path.read_text(encoding="utf-8")
        if path.suffix in {".md", ".html"}:
            found[path.name] = markdown_to_html(raw) if path.suffix == ".md" else raw
    return found


def hostile() -> dict[str, str]:
    chunk = "".join(issues().values())
    return {
        "10,000 nested divs": "<div>" * 10_000 + "the deep text" + "</div>" * 10_000,
        "10,000 nested lists": "<ul><li>" * 10_000 + "the deep text",
        "10,000 nested quotes": "<blockquote>" * 10_000 + "the deep text",
        "2 MiB of issues": chunk * (2 * 1024 * 1024 // len(chunk.encode())),
    }


def checks(text: str) -> dict[str, int]:
    lines = text.splitlines()
    return {
        "md links": len(re.findall(r"\[[^\]\n]*\]\([^)\n]+\)", text)),
        "# headings": sum(1 for line in lines if re.match(r"#{1,6} ", line)),
        "blank between items": len(
            re.findall(r"^ *(?:[-*+]|\d+\.) .*\n\n *(?:[-*+]|\d+\.) ", text, re.MULTILINE)
        ),
        "wrappable > 78": sum(
            1 for line in lines if columns(line) > WIDTH and len(line.strip().split()) > 1
        ),
    }


def timed(convert: Converter, html: str) -> float:
    """Median seconds of one conversion, over ROUNDS rounds of enough repetitions."""
    repeat = max(1, int(0.05 / max(_once(convert, html), 1e-6)))
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(repeat):
            convert(html)
        samples.append((time.perf_counter() - started) / repeat)
    return statistics.median(samples)


def _once(convert: Converter, html: str) -> float:
    started = time.perf_counter()
    convert(html)
    return time.perf_counter() - started


def installed_size(packages: list[str]) -> int:
    total = 0
    for name in packages:
        for file in metadata.distribution(name).files or []:
            path = Path(str(file.locate()))
            if path.is_file():
                total += path.stat().st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print every output")
    args = parser.parse_args()
    sources = issues()
    for name, make in CONVERTERS.items():
        try:
            convert = make()
        except ImportError:
            print(f"== {name}: not installed (pip install {' '.join(PACKAGES[name])})")
            continue
        size = installed_size(PACKAGES[name])
        print(f"== {name}: installs {size / 1e6:.1f} MB ({', '.join(PACKAGES[name]) or '-'})")
        total: dict[str, int] = {}
        for issue, html in sources.items():
            try:
                text = convert(html)
            except Exception as exc:  # noqa: BLE001 - a converter's failure is a result
                print(f"   {issue:20} FAILED: {type(exc).__name__}: {exc}")
                continue
            found = checks(text)
            total = {key: total.get(key, 0) + value for key, value in found.items()}
            ms = timed(convert, html) * 1000
            print(f"   {issue:20} {ms:7.2f} ms  {found}")
            if args.show:
                print(text)
        print(f"   rule checks, all issues: {total}")
        for case, html in hostile().items():
            started = time.perf_counter()
            try:
                text = convert(html)
                widest = max(map(len, text.splitlines()), default=0)
                outcome = f"{len(text):,} chars out, widest line {widest:,}" + (
                    "" if "nested" not in case or "the deep text" in text else ", TEXT LOST"
                )
            except Exception as exc:  # noqa: BLE001
                outcome = f"{type(exc).__name__}"
            print(f"   {case:24} {time.perf_counter() - started:7.3f} s  {outcome}")


if __name__ == "__main__":
    main()
