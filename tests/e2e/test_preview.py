"""preview through the console script on Example Corp (examples/quickstart/COMPANY.md): each entry with its
display name and team path, and --only to see just the imported, ignored or disabled ones."""
from __future__ import annotations

import re

HEADER = ["account", "name", "email", "team", "verdict", "reason"]


def sections(out: str) -> dict[str, tuple[str, list[list[str]]]]:
    """Per directory: its counts line and its rows (cells are at least two spaces apart; a reason that
    wraps continues on an indented line, which is left out)."""
    found: dict[str, tuple[str, list[list[str]]]] = {}
    lines = out.splitlines()
    for index, line in enumerate(lines):
        head = re.match(r"^(\w+): \d+ entries read", line)
        if not head:
            continue
        assert re.split(r"\s{2,}", lines[index + 1].strip()) == HEADER, lines[index + 1]
        rows = []
        for row in lines[index + 2:]:
            if not row.strip():
                break
            if not row.startswith(" "):
                rows.append(re.split(r"\s{2,}", row.strip(), maxsplit=5))
        found[head.group(1)] = (line, rows)
    return found


def by_account(rows: list[list[str]]) -> dict[str, dict[str, str]]:
    return {row[0]: dict(zip(HEADER, row)) for row in rows}


def test_preview_shows_each_entrys_display_name_and_team_path(company):
    shown = company.run("preview", "policy.yaml", "--limit", "1000")
    assert shown.code == 0, shown.err
    assert shown.err == ""
    corp_line, corp = sections(shown.out)["corp"]
    assert corp_line == ("corp: 228 entries read, 217 would be imported, 5 ignored, 6 disabled; "
                         "showing the first 228")
    people = by_account(corp)
    assert people["sosei"] == {"account": "sosei", "name": "Samuel Osei", "email": "samuel.osei@corp.example.com",
                               "team": "Example Corp / Operations", "verdict": "imported",
                               "reason": "in scope of corp; email from {mail}"}
    assert people["jweiss"]["name"] == "Jürgen Weiß"
    assert people["jweiss"]["team"] == "Example Corp / Engineering / Security"
    assert people["tbaker"]["name"] == "Tom <Tommy> Baker"  # markup-like text shown as it is
    assert people["praman"]["name"] == "Priya Raman | Platform"
    assert people["cokafor"]["team"] == "Example Corp"  # a contractor: right at the root
    # not imported: named as the mapping names them, and no team
    assert (people["ebrooks"]["name"], people["ebrooks"]["email"], people["ebrooks"]["team"]) == ("Ethan Brooks", "—", "—")
    assert (people["hberg"]["name"], people["hberg"]["team"], people["hberg"]["verdict"]) == ("Hannah Berg", "—", "disabled")
    # merged by email: the emea entry shows the person as imported, with the winning corp entry's team
    _, emea = sections(shown.out)["emea"]
    amelie = by_account(emea)["alaurent"]
    assert (amelie["name"], amelie["team"]) == ("Amélie Laurent", "Example Corp / Sales / EMEA")


def test_only_ignored_lists_just_the_ignored_entries_and_keeps_the_counts(company):
    shown = company.run("preview", "policy.yaml", "--only", "ignored")
    assert shown.code == 0, shown.err
    found = sections(shown.out)
    corp_line, corp = found["corp"]
    assert corp_line == ("corp: 228 entries read, 217 would be imported, 5 ignored, 6 disabled; "
                         "showing the first 5 ignored")
    assert {row[0] for row in corp} == {"ebrooks", "imurray", "mgarcia", "jsmith", "jsmith2"}
    assert {row[4] for row in corp} == {"ignored"}
    jane = by_account(corp)["jsmith"]
    assert (jane["name"], jane["email"], jane["team"]) == ("Jane Smith", "j.smith@corp.example.com", "—")
    assert jane["reason"].startswith("conflict: j.smith@corp.example.com is also the email of CN=Jan Smith")
    emea_line, emea = found["emea"]
    assert emea_line.endswith("1 ignored, 2 disabled; showing the first 1 ignored")
    assert [row[4] for row in emea] == ["ignored"]


def test_only_disabled_and_imported_with_a_limit(company):
    disabled = sections(company.run("preview", "policy.yaml", "--only", "disabled", "--limit", "2").out)
    line, rows = disabled["corp"]
    assert line.endswith("showing the first 2 disabled")
    assert [row[4] for row in rows] == ["disabled", "disabled"]
    imported = sections(company.run("preview", "policy.yaml", "--only", "imported", "--limit", "500").out)
    line, rows = imported["corp"]
    assert line.endswith("showing the first 217 imported") and len(rows) == 217
    assert all(row[4] == "imported" and row[3].startswith("Example Corp") for row in rows)


def test_only_takes_a_verdict(company):
    wrong = company.run("preview", "policy.yaml", "--only", "leavers")
    assert wrong.code == 64
    assert wrong.err.startswith("usage error:") and "--only" in wrong.err
