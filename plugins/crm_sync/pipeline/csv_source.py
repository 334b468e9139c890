"""A folder of CSV files as a contact source: the spreadsheet exports users import into GHL.

Every line becomes a raw record. A line that cannot be read (wrong delimiter, missing
header, bad encoding, an unclosed quote, a field or file over its size limit, duplicate of
an earlier line) is still landed, carrying ``_error`` with its file and line number, so
stage quarantines it with that reason; the good lines go on. A non-empty notes column also
yields a note for that person. Files are re-read on every run: unchanged lines hash the
same and cause no writes.

An unclosed quote would make the csv module read the following lines into one field, so
other people's emails and notes would land in the first person's note. A quoted field may
span lines (Excel writes multi-line notes that way), but one whose continuation lines read
as complete rows of their own is an unclosed quote: that line is quarantined and reading
starts again on the next line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crm_sync.paths import data_home
from crm_sync.profile import ProfileError
from crm_sync.profile_app import CsvSource

MAX_FILE_BYTES = 50 * 1024 * 1024
"""A bigger file is quarantined whole (split it): every line is held in memory while it is read."""
MAX_FIELD_CHARS = 100_000
"""A longer field quarantines its line; below the csv module's own limit (131,072), so that one never trips first."""


def csv_folder(source: CsvSource) -> Path:
    """The import folder, which must stay inside CRM_SYNC_HOME (no ``..``, no link out of it)."""
    home = data_home().resolve()
    folder = (home / source.folder).resolve()
    if not folder.is_relative_to(home):
        raise ProfileError(f"key 'app.csv.folder': {source.folder!r} is outside CRM_SYNC_HOME ({home}); "
                           "give a folder inside it")
    return folder


def _bad(where: str, line: int, error: str, raw: str = "") -> dict[str, Any]:
    return {"_key": f"{where}:{line}", "_file": where, "_line": line, "_error": error, "_raw": raw[:500]}


def _records(lines: list[str], source: CsvSource,
             header: list[str] | None) -> Iterator[tuple[int, list[str] | None, str]]:
    """(first line number, fields or None, error) per record, ``header`` None while reading the
    header itself. After an error, reading starts again on the line after the record's first."""
    pos = 0

    def feed() -> Iterator[str]:
        nonlocal pos
        while pos < len(lines):
            pos += 1
            yield lines[pos - 1]

    def reader() -> Iterator[list[str]]:
        return csv.reader(feed(), delimiter=source.delimiter, strict=True)

    records = reader()
    while pos < len(lines):
        start = pos
        try:
            fields = next(records)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start + 1, None, _reading_error(exc, pos - start)
            pos, records = start + 1, reader()
            continue
        if header and pos - start > 1 and any(_is_row(line, source, header) for line in lines[start + 1:pos]):
            yield start + 1, None, UNCLOSED + ", over lines that read as rows of their own; close the quote"
            pos, records = start + 1, reader()
            continue
        if too_long := next((len(field) for field in fields if len(field) > MAX_FIELD_CHARS), None):
            yield start + 1, None, f"a field has {too_long} characters, over the limit of {MAX_FIELD_CHARS} characters"
            continue
        if fields:  # a blank line is no record
            yield start + 1, fields, ""


UNCLOSED = "unclosed quote: the quoted field runs on past the end of its line"


def _reading_error(exc: csv.Error, lines_read: int) -> str:
    if "field limit" in str(exc):
        return f"a field is over the limit of {MAX_FIELD_CHARS} characters"
    if lines_read > 1 or "unexpected end of data" in str(exc):
        return UNCLOSED + "; close the quote"
    return f"a quote inside a quoted field must be doubled (\"\"): {exc}"


def _is_row(line: str, source: CsvSource, header: list[str]) -> bool:
    """Does this line, read alone, make a whole row with a key? (Then it is not part of a note.)"""
    fields = next(csv.reader([line], delimiter=source.delimiter), [])
    key = header.index(source.key_column) if source.key_column in header else 0
    return len(fields) == len(header) and bool(fields[key].strip())


def read_file(path: Path, source: CsvSource, mapped: set[str],
              seen: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The rows of one file, each good line a contact (plus its note), each bad one an error row.
    ``seen`` (key -> "file line N") carries keys across the files of one import."""
    where = path.name
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return [_bad(where, 0, f"file is {size} bytes, over the limit of {MAX_FILE_BYTES}; split it")]
        imported_at = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat()
        content = path.read_bytes().decode(source.encoding)
    except UnicodeDecodeError as exc:
        return [_bad(where, 0, f"file is not {source.encoding}: byte {exc.start} cannot be decoded; "
                               "save it as UTF-8 or set csv.encoding in the profile")]
    except OSError as exc:
        return [_bad(where, 0, f"file cannot be read: {exc.strerror}")]
    lines = list(io.StringIO(content.removeprefix("\ufeff"), newline=""))  # Excel's "CSV UTF-8" has a BOM
    line, header, error = next(_records(lines[:1], source, None), (1, [], ""))  # the header is line 1
    if header is None:
        return [_bad(where, line, f"header: {error}", lines[0])]
    if missing := sorted(mapped - set(header)):
        return [_bad(where, 1, f"header has no column(s) {missing} (found {header}); check csv.delimiter "
                               f"({source.delimiter!r}) and the mapping", source.delimiter.join(header))]
    rows: list[dict[str, Any]] = []
    first_line = {} if seen is None else seen
    for line, fields, error in _records(lines[1:], source, header):
        line += 1
        if fields is None:
            rows.append(_bad(where, line, error, lines[line - 1]))
            continue
        if len(fields) != len(header):
            rows.append(_bad(where, line, f"expected {len(header)} columns, found {len(fields)}", str(fields)))
            continue
        record = dict(zip(header, fields, strict=True))
        key = (record.get(source.key_column) or "").strip().lower()
        if not key:
            rows.append(_bad(where, line, f"column {source.key_column!r} is empty", str(record)))
            continue
        if key in first_line:
            rows.append(_bad(where, line, f"duplicate of {first_line[key]} ({source.key_column} {key})",
                             str(record)))
            continue
        first_line[key] = f"line {line}" if seen is None else f"{where} line {line}"
        contact = {**record, "_key": key, "_file": where, "_line": line, "_imported_at": imported_at}
        if source.tags_column:
            contact[source.tags_column] = [t for t in (record.get(source.tags_column) or "")
                                           .split(source.tags_separator) if t.strip()]
        rows.append(contact)
        note = (record.get(source.notes_column) or "").strip() if source.notes_column else ""
        if note:
            rows.append({"_entity": "note", "_key": f"{key}:note", "_contact": key, "body": note,
                         "_imported_at": imported_at, "_file": where, "_line": line})
    return rows


def read_csv_folder(profile) -> list[tuple[str, dict[str, Any]]]:
    """(entity, record) for every line of every CSV file in the profile's folder."""
    source = profile.app.csv
    folder = csv_folder(source)
    home = data_home().resolve()
    mapped = {spec.app for spec in profile.fields("contact").values() if spec.app}
    out, seen = [], {}
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        rows = (read_file(path, source, mapped, seen) if path.resolve().is_relative_to(home) else
                [_bad(path.name, 0, "file is a link to outside CRM_SYNC_HOME; copy the file into the folder")])
        for row in rows:
            out.append((row.pop("_entity", "contact"), row))
    return out
