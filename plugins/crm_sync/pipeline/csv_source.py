"""A folder of CSV files as a contact source: the spreadsheet exports users import into GHL.

Every line becomes a raw record. A line that cannot be read (wrong delimiter, missing
header, bad encoding, duplicate of an earlier line) is still landed, carrying ``_error``
with its file and line number, so stage quarantines it with that reason; the good lines
go on. A non-empty notes column also yields a note for that person. Files are re-read on
every run: unchanged lines hash the same and cause no writes.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crm_sync.paths import data_home
from crm_sync.profile import CsvSource


def csv_folder(source: CsvSource) -> Path:
    folder = Path(source.folder)
    return folder if folder.is_absolute() else data_home() / folder


def _bad(where: str, line: int, error: str, raw: str = "") -> dict[str, Any]:
    return {"_key": f"{where}:{line}", "_file": where, "_line": line, "_error": error, "_raw": raw[:500]}


def read_file(path: Path, source: CsvSource, mapped: set[str],
              seen: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The rows of one file, each good line a contact (plus its note), each bad one an error row.
    ``seen`` (key -> "file line N") carries keys across the files of one import."""
    where = path.name
    imported_at = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat()
    try:
        content = path.read_bytes().decode(source.encoding)
    except UnicodeDecodeError as exc:
        return [_bad(where, 0, f"file is not {source.encoding}: byte {exc.start} cannot be decoded; "
                               "save it as UTF-8 or set csv.encoding in the profile")]
    reader = csv.DictReader(io.StringIO(content, newline=""), delimiter=source.delimiter)
    header = reader.fieldnames or []
    missing = sorted(mapped - set(header))
    if missing:
        return [_bad(where, 1, f"header has no column(s) {missing} (found {header}); check csv.delimiter "
                               f"({source.delimiter!r}) and the mapping", source.delimiter.join(header))]
    rows: list[dict[str, Any]] = []
    first_line = {} if seen is None else seen
    for record in reader:
        line = reader.line_num
        if None in record or any(v is None for v in record.values()):
            rows.append(_bad(where, line, f"expected {len(header)} columns, found a different number",
                             str(record)))
            continue
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
    mapped = {spec.app for spec in profile.fields("contact").values() if spec.app}
    out, seen = [], {}
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        for row in read_file(path, source, mapped, seen):
            out.append((row.pop("_entity", "contact"), row))
    return out
