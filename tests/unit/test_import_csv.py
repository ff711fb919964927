"""The import's CSV reader (imports/csvstream.py) and row rules (imports/domain.py):
records cut at any byte give the same records and offsets, quoting, BOM, CRLF, a 10 MB
field passed over without being held, and the fast paths equal to the domain's parsers."""

from __future__ import annotations

import csv
import io
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.core.errors import ValidationError
from herald.imports.csvstream import (
    MAX_RECORD_BYTES,
    RecordError,
    fields,
    is_blank,
    records,
    sniff_delimiter,
)
from herald.imports.domain import Mapping, Role, RowError, parse_email, parse_name, parse_row
from herald.subscriptions.domain import SubscriberEmail, SubscriberName


def cut(data: bytes, sizes: list[int]) -> list[bytes]:
    pieces, pos, i = [], 0, 0
    while pos < len(data):
        size = max(1, sizes[i % len(sizes)]) if sizes else len(data)
        pieces.append(data[pos : pos + size])
        pos += size
        i += 1
    return pieces


def table(data: bytes, pieces: list[bytes] | None = None) -> list[list[str]]:
    return [fields(r) for r in records(pieces or [data]) if not is_blank(r)]


SAMPLE = (
    b"\xef\xbb\xbfemail,name,note\r\n"
    b'a@example.com,"Smith, Ann","said ""hi""\r\non two lines"\r\n'
    b"b@example.com,Bob,\r\n"
    b"\r\n"
    b"c@example.com,\xc3\x89lodie,caf\xc3\xa9"
)


def test_quoting_bom_crlf_and_a_last_line_without_line_end() -> None:
    assert table(SAMPLE) == [
        ["email", "name", "note"],
        ["a@example.com", "Smith, Ann", 'said "hi"\r\non two lines'],
        ["b@example.com", "Bob", ""],
        ["c@example.com", "Élodie", "café"],
    ]


def test_offsets_and_lines_let_a_reader_resume_after_any_record() -> None:
    found = list(records([SAMPLE]))
    assert [r.line for r in found] == [1, 2, 4, 5, 6]
    assert found[0].start == 3  # after the byte-order mark
    for before, after in itertools.pairwise(found):
        assert before.end == after.start
        assert before.next_line == after.line
        resumed = list(records([SAMPLE[before.end :]], offset=before.end, line=before.next_line))
        # Resuming from a checkpoint gives the same records, at the same places.
        assert resumed == found[found.index(after) :]


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=20))
@settings(max_examples=200, deadline=None)
def test_any_cut_gives_the_same_records(sizes: list[int]) -> None:
    whole = list(records([SAMPLE]))
    assert list(records(cut(SAMPLE, sizes))) == whole


@given(
    st.lists(
        st.lists(st.text(alphabet='ab,"\n\r é;', max_size=8), min_size=1, max_size=4),
        min_size=1,
        max_size=8,
    ),
    st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=5),
)
@settings(max_examples=200, deadline=None)
def test_what_the_csv_module_writes_reads_back_cut_anywhere(
    rows: list[list[str]], sizes: list[int]
) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    data = buffer.getvalue().encode()
    got = [fields(r) for r in records(cut(data, sizes))]
    expected = list(csv.reader(io.StringIO(buffer.getvalue(), newline="")))
    assert got == expected


def test_a_10_mb_field_is_passed_over_without_being_kept() -> None:
    huge = b'big@example.com,"' + b"x" * (10 * 1024 * 1024) + b'"\n'
    data = b"email,name\n" + huge + b"after@example.com,After\n"
    found = list(records(cut(data, [1024 * 1024])))
    assert [r.line for r in found] == [1, 2, 3]
    assert found[1].data is None
    with pytest.raises(RecordError, match="longer than"):
        fields(found[1])
    assert fields(found[2]) == ["after@example.com", "After"]
    assert found[2].start == len(b"email,name\n") + len(huge)
    assert len(huge) > MAX_RECORD_BYTES


def test_an_unclosed_quote_at_the_end_is_an_error_for_that_row() -> None:
    found = list(records([b'email\n"a@example.com\nb@example.com\n']))
    assert len(found) == 2
    with pytest.raises(RecordError, match="never closed"):
        fields(found[1])


def test_invalid_utf8_is_an_error_for_that_row() -> None:
    found = list(records([b"email\n\xff@example.com\nok@example.com\n"]))
    with pytest.raises(RecordError, match="UTF-8"):
        fields(found[1])
    assert fields(found[2]) == ["ok@example.com"]


def test_delimiter_is_sniffed_from_the_header() -> None:
    assert sniff_delimiter(b"email;name;city\r\n") == ";"
    assert sniff_delimiter(b"email\tname\n") == "\t"
    assert sniff_delimiter(b"email\n") == ","
    assert sniff_delimiter(b"email,name;x\n") == ","


def test_missing_email_column_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match=r"no email column.*'name', 'city'"):
        Mapping.guess(["name", "city"])


def test_guessed_mapping() -> None:
    mapping = Mapping.guess(["E-mail", "Name", "City", ""])
    assert [c.role for c in mapping.columns] == [
        Role.EMAIL,
        Role.NAME,
        Role.ATTRIBUTE,
        Role.IGNORE,
    ]


def test_attribute_keys_are_names_a_template_can_use() -> None:
    mapping = Mapping.guess(["email", "Sign-up date", "City", "2nd plan"])
    assert [key for _, key in mapping.attributes] == ["sign_up_date", "city", "_2nd_plan"]
    with pytest.raises(ValidationError, match="needs a name"):
        Mapping.guess(["email", "€€"])
    with pytest.raises(RowError, match="NUL"):
        parse_row(Mapping.guess(["email", "x"]), 2, ["a@example.com", "a\x00b"])


def test_mapping_rules() -> None:
    with pytest.raises(ValidationError, match="exactly one email"):
        Mapping.of(["a", "b"], [Role.EMAIL, Role.EMAIL])
    with pytest.raises(ValidationError, match="same name"):
        Mapping.of(["email", "x", "x"], [Role.EMAIL, Role.ATTRIBUTE, Role.ATTRIBUTE])


def test_rows() -> None:
    mapping = Mapping.guess(["email", "name", "city"])
    row = parse_row(mapping, 2, [" Ann@Example.COM ", "Ann", "Paris"])
    assert (row.email, row.name, row.attributes) == ("Ann@example.com", "Ann", '{"city":"Paris"}')
    assert parse_row(mapping, 3, ["b@example.com"]).name is None  # short rows: empty cells
    with pytest.raises(RowError, match="4 fields"):
        parse_row(mapping, 4, ["b@example.com", "B", "x", "y"])
    with pytest.raises(RowError, match="longer than"):
        parse_row(mapping, 5, ["b@example.com", "B", "x" * 1001])


def test_the_attributes_limit_counts_utf8_bytes_not_characters() -> None:
    """Six columns of 1,000 four-byte characters: 6,000 characters of JSON but 24 KB,
    over the 16 KiB every other writer of attributes is held to."""
    mapping = Mapping.guess(["email", "a", "b", "c", "d", "e", "f"])
    wide = "\U0001f600" * 1000
    with pytest.raises(RowError, match="over 16 KiB"):
        parse_row(mapping, 2, ["b@example.com", *[wide] * 6])
    assert parse_row(mapping, 3, ["b@example.com", *["x" * 1000] * 6]).attributes


EMAILS = [
    "a@example.com",
    "A.B+tag@Example.COM",
    "x@localhost",
    "x@b.test",
    "x@b.123",
    "a..b@example.com",
    ".a@example.com",
    "a@-bad.com",
    "a@bad-.com",
    "a" * 65 + "@example.com",
    "a@" + "b" * 64 + ".com",
    "a@" + ".".join(["b" * 60] * 5) + ".com",
    "user@xn--bcher-kva.example",
    "user@bücher.example",
    "üser@example.com",
    '"quoted"@example.com',
    "a@b@example.com",
    "",
    " padded@example.com ",
    "a@[127.0.0.1]",
    "a@example.com.",
    "o'brien@example.ie",
    "a@sub.domain.co.uk",
    "a@123.com",
]


@pytest.mark.parametrize("raw", EMAILS)
def test_the_fast_email_path_answers_as_the_domain_does(raw: str) -> None:
    try:
        expected: str | None = SubscriberEmail.parse(raw).value
    except ValidationError:
        expected = None
    try:
        got: str | None = parse_email(raw)
    except ValidationError:
        got = None
    assert got == expected


@given(st.from_regex(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,70}@[A-Za-z0-9.-]{1,30}", fullmatch=True))
@settings(max_examples=300, deadline=None)
def test_the_fast_email_path_agrees_on_random_ascii(raw: str) -> None:
    test_the_fast_email_path_answers_as_the_domain_does(raw)


@given(st.text(max_size=300) | st.text(alphabet=[chr(c) for c in range(32, 127)], max_size=300))
@settings(max_examples=300, deadline=None)
def test_the_fast_name_path_answers_as_the_domain_does(raw: str) -> None:
    try:
        expected: str | None = SubscriberName.parse(raw).value
    except ValidationError:
        expected = None
    try:
        got: str | None = parse_name(raw)
    except ValidationError:
        got = None
    assert got == expected


def test_fast_paths_are_deterministic_under_shuffling() -> None:
    shuffled = EMAILS[:]
    random.Random(4).shuffle(shuffled)
    for raw in shuffled:
        test_the_fast_email_path_answers_as_the_domain_does(raw)
