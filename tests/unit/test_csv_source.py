"""CSV import: every good line imports, every bad line is reported with its line number and reason."""

from __future__ import annotations

from crm_sync.pipeline.csv_source import read_file
from crm_sync.profile import profile_by_name

HEADER = "Email,First Name,Last Name,Phone,Company,Tags,Notes\n"


def read(tmp_path, content: bytes | str, **overrides):
    profile = profile_by_name("csv_import")
    source = profile.app.csv.model_copy(update=overrides)
    path = tmp_path / "people.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    mapped = {spec.app for spec in profile.fields("contact").values() if spec.app}
    return read_file(path, source, mapped)


def test_good_lines_become_contacts_with_tags_and_a_note(tmp_path):
    rows = read(tmp_path, HEADER + 'Ava@Example.com,Ava,Garcia,415-201-1001,Acme,"vip; trial",Called twice\n')
    contact, note = rows
    assert contact["_key"] == "ava@example.com" and contact["_line"] == 2
    assert contact["Tags"] == ["vip", " trial"] and contact["First Name"] == "Ava"
    assert note == {"_entity": "note", "_key": "ava@example.com:note", "_contact": "ava@example.com", "body": "Called twice",
                    "_imported_at": contact["_imported_at"], "_file": "people.csv", "_line": 2}


def test_a_duplicate_line_names_the_line_it_repeats(tmp_path):
    rows = read(tmp_path, HEADER + "a@example.com,A,,,,,\nb@example.com,B,,,,,\nA@example.com,A,,,,,\n")
    assert [r.get("_error") for r in rows] == [None, None, "duplicate of line 2 (Email a@example.com)"]
    assert rows[2]["_line"] == 4


def test_a_wrong_delimiter_is_reported_on_the_header_line(tmp_path):
    rows = read(tmp_path, HEADER.replace(",", ";") + "a@example.com;A;;;;;\n")
    assert len(rows) == 1 and rows[0]["_line"] == 1 and "check csv.delimiter" in rows[0]["_error"]


def test_bad_encoding_is_reported_not_raised(tmp_path):
    rows = read(tmp_path, HEADER.encode() + "zoë@example.com,Zoë,,,,,\n".encode("latin-1"))
    assert len(rows) == 1 and "not utf-8" in rows[0]["_error"]


def test_a_line_with_too_many_columns_is_bad_and_the_next_line_still_imports(tmp_path):
    rows = read(tmp_path, HEADER + "a@example.com,A,B,C,D,E,F,G,H\nb@example.com,B,,,,,\n")
    assert "columns" in rows[0]["_error"] and rows[0]["_line"] == 2
    assert rows[1]["_key"] == "b@example.com" and "_error" not in rows[1]


def test_the_same_person_in_two_files_is_a_reported_duplicate_not_a_silent_drop(tmp_path, monkeypatch):
    from crm_sync.pipeline.csv_source import read_csv_folder

    monkeypatch.setenv("CRM_SYNC_HOME", str(tmp_path))
    folder = tmp_path / "imports" / "csv_import"
    folder.mkdir(parents=True)
    (folder / "a_2026-01.csv").write_text(HEADER + "ann@example.com,Ann,Lee,,,,\n")
    (folder / "b_2026-02.csv").write_text(HEADER + "bob@example.com,Bob,,,,,\nAnn@example.com,Ann,Li,,,,\n")
    rows = [row for _, row in read_csv_folder(profile_by_name("csv_import"))]
    assert [(r["_file"], r["_line"], r.get("_error")) for r in rows] == [
        ("a_2026-01.csv", 2, None), ("b_2026-02.csv", 2, None),
        ("b_2026-02.csv", 3, "duplicate of a_2026-01.csv line 2 (Email ann@example.com)")]
