"""CSV import: every good line imports, every bad line is reported with its line number and reason."""

from __future__ import annotations

import pytest
from crm_sync.pipeline import csv_source
from crm_sync.pipeline.csv_source import MAX_FIELD_CHARS, read_file
from crm_sync.paths import PROFILES_DIR
from crm_sync.profile import ProfileError, parse_profile, profile_by_name

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


@pytest.mark.parametrize("later", ["c@example.com,Cy,,,,,Height 6'2\"\n", "c@example.com,Cy,,,,,\n"],
                         ids=["closed-by-a-later-quote", "never-closed"])
def test_an_unclosed_quote_is_quarantined_and_never_carries_the_next_rows_into_a_note(tmp_path, later):
    rows = read(tmp_path, HEADER + 'a@example.com,Ann,,,,,"Called twice\nb@example.com,Bob,,,,,Private note\n' + later)
    assert rows[0]["_line"] == 2 and "unclosed quote" in rows[0]["_error"]
    contacts = [r["_key"] for r in rows if "_error" not in r and r.get("_entity") != "note"]
    assert contacts == ["b@example.com", "c@example.com"]
    notes = {r["_contact"]: r["body"] for r in rows if r.get("_entity") == "note"}
    assert notes.get("b@example.com") == "Private note" and "a@example.com" not in notes


def test_a_quoted_note_over_several_lines_is_one_note(tmp_path):
    rows = read(tmp_path, HEADER + 'a@example.com,Ann,,,,,"First line\nsecond, with a comma"\nb@example.com,Bob,,,,,\n')
    assert [r.get("body") for r in rows if r.get("_entity") == "note"] == ["First line\nsecond, with a comma"]
    assert [r["_line"] for r in rows if r.get("_entity") != "note"] == [2, 4]


def test_an_excel_csv_utf8_file_with_a_bom_imports(tmp_path):
    rows = read(tmp_path, "\ufeff".encode() + (HEADER + "zoë@example.com,Zoë,,,,,\r\n").replace("\n", "\r\n").encode())
    assert [(r["_key"], r["First Name"]) for r in rows] == [("zoë@example.com", "Zoë")]


@pytest.mark.parametrize("size", [MAX_FIELD_CHARS + 1, 200_000], ids=["over-our-limit", "over-the-csv-module-limit"])
def test_a_field_over_the_size_limit_is_quarantined_and_the_next_line_imports(tmp_path, size):
    rows = read(tmp_path, HEADER + f'a@example.com,Ann,,,,,"{"x" * size}"\nb@example.com,Bob,,,,,\n')
    assert rows[0]["_line"] == 2 and f"over the limit of {MAX_FIELD_CHARS} characters" in rows[0]["_error"]
    assert [r["_key"] for r in rows[1:]] == ["b@example.com"]


def test_a_file_over_the_size_limit_is_quarantined_whole_and_the_other_files_import(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_SYNC_HOME", str(tmp_path))
    monkeypatch.setattr(csv_source, "MAX_FILE_BYTES", 1000)
    folder = tmp_path / "imports" / "csv_import"
    folder.mkdir(parents=True)
    (folder / "big.csv").write_text(HEADER + "".join(f"p{n}@example.com,P,,,,,\n" for n in range(100)))
    (folder / "small.csv").write_text(HEADER + "ann@example.com,Ann,,,,,\n")
    rows = [row for _, row in csv_source.read_csv_folder(profile_by_name("csv_import"))]
    assert rows[0]["_file"] == "big.csv" and "over the limit of 1000" in rows[0]["_error"]
    assert [(r["_file"], r["_key"]) for r in rows[1:]] == [("small.csv", "ann@example.com")]


def test_the_import_folder_must_stay_inside_crm_sync_home(tmp_path, monkeypatch):
    home, outside = tmp_path / "home", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text(HEADER + "x@example.com,X,,,,,\n")
    monkeypatch.setenv("CRM_SYNC_HOME", str(home))
    profile = profile_by_name("csv_import")
    escaping = profile.model_copy(update={"app": profile.app.model_copy(update={
        "csv": profile.app.csv.model_copy(update={"folder": "../outside"})})})
    with pytest.raises(ProfileError, match="outside CRM_SYNC_HOME"):
        csv_source.read_csv_folder(escaping)
    (home / "imports").mkdir(parents=True)
    (home / "imports" / "csv_import").symlink_to(outside)  # a link out of the home is outside too
    with pytest.raises(ProfileError, match="outside CRM_SYNC_HOME"):
        csv_source.read_csv_folder(profile)
    (home / "imports" / "csv_import").unlink()
    (home / "imports" / "csv_import").mkdir()
    (home / "imports" / "csv_import" / "linked.csv").symlink_to(outside / "secret.csv")
    rows = [row for _, row in csv_source.read_csv_folder(profile)]
    assert len(rows) == 1 and "outside CRM_SYNC_HOME" in rows[0]["_error"]


@pytest.mark.parametrize("folder", ["/etc", "../elsewhere", "imports/../../elsewhere"])
def test_a_profile_whose_import_folder_leaves_crm_sync_home_does_not_load(folder):
    text = (PROFILES_DIR / "csv_import.yaml").read_text().replace("folder: imports/csv_import", f"folder: {folder}")
    with pytest.raises(ProfileError, match="app.csv.folder.*inside CRM_SYNC_HOME"):
        parse_profile(text, "csv_import.yaml")
