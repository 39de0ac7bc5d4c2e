"""The lab's token file: users added later get a token, the tokens already handed out stay."""
from __future__ import annotations

import csv

from lab import credentials
from lab.topology import ADMIN_USER, GATES_USER, READER_USER, STATUS_USER


def rows(path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_a_token_file_of_an_older_lab_gains_the_new_users_and_keeps_its_tokens(tmp_path, monkeypatch):
    path = tmp_path / "tokens.csv"
    path.write_text(f"old-admin,{ADMIN_USER},lab-1,system:masters\nold-reader,{READER_USER},lab-2,system:serviceaccounts\n")
    monkeypatch.setattr(credentials, "TOKEN_FILE", path)
    tokens = credentials._tokens()
    assert tokens[ADMIN_USER] == "old-admin" and tokens[READER_USER] == "old-reader" and len(tokens[STATUS_USER]) >= 32
    assert rows(path)[2] == [tokens[STATUS_USER], STATUS_USER, "lab-3", "system:serviceaccounts"]
    assert rows(path)[3] == [tokens[GATES_USER], GATES_USER, "lab-4", "system:serviceaccounts"]
    assert credentials._tokens() == tokens and len(rows(path)) == 4
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_new_lab_mints_every_user(tmp_path, monkeypatch):
    monkeypatch.setattr(credentials, "TOKEN_FILE", tmp_path / "tokens.csv")
    tokens = credentials._tokens()
    assert set(tokens) == set(credentials.USERS) and len(set(tokens.values())) == len(tokens)
    assert [row[1:] for row in rows(tmp_path / "tokens.csv")] == [
        [user, f"lab-{i}", ",".join(groups)] for i, (user, groups) in enumerate(credentials.USERS.items(), start=1)]
