"""Tests of scripts/check-log-secrets: it must find a planted secret in every form it claims
to search for, name the file and the kind of secret, and never print the secret itself."""

import base64
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote_plus

import pytest

CHECKER = Path(__file__).resolve().parents[2] / "scripts" / "check-log-secrets"

REFRESH_TOKEN = "Zr4Hq8Mv2Nc6Lx0Pt5Wb9Ks3Fd7Gj1Ya4Ue8Io2Qs6T"
PASSWORD = "correct horse/battery+staple"
SESSION = "s3ss10n-c00k13-v4lu3-0123456789abcdef"


def run_checker(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(CHECKER), str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A suite-run directory with three recorded secrets and one clean log."""
    secrets = [
        {"kind": "refresh_token", "value": REFRESH_TOKEN},
        {"kind": "password", "value": PASSWORD},
        {"kind": "cookie sesame_session", "value": SESSION},
        {"kind": "password", "value": "pw"},
    ]
    suite = tmp_path / "rust-sqlite"
    suite.mkdir()
    (suite / "secrets.jsonl").write_text("".join(json.dumps(s) + "\n" for s in secrets))
    (suite / "rust-clean.log").write_text(
        "INFO sesame::grant: issued tokens client_id=0b3c7a52 grant=password\n"
    )
    return tmp_path


def plant(run_dir: Path, text: str) -> Path:
    log = run_dir / "interop" / "serve.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text(f"DEBUG sesame::http: request body={text} status=400\n")
    return log


def test_clean_logs_pass(run_dir):
    result = run_checker(run_dir)
    assert result.returncode == 0, result.stderr
    assert "leaks found: 0" in result.stdout
    assert "1 shorter than 8 characters" in result.stdout


def test_planted_token_found(run_dir):
    log = plant(run_dir, REFRESH_TOKEN)
    result = run_checker(run_dir)
    assert result.returncode == 1
    assert f"{log}: contains a refresh_token (as sent)" in result.stderr
    assert REFRESH_TOKEN not in result.stdout + result.stderr


def test_url_encoded_password_found(run_dir):
    plant(run_dir, quote_plus(PASSWORD, safe=""))
    result = run_checker(run_dir)
    assert result.returncode == 1
    assert "contains a password (URL-encoded)" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


@pytest.mark.parametrize("client_id", ["a", "ab", "abc"])
def test_secret_inside_basic_header_found(run_dir, client_id):
    header = base64.b64encode(f"{client_id}:{SESSION}".encode()).decode()
    plant(run_dir, f"authorization=Basic {header}")
    result = run_checker(run_dir)
    assert result.returncode == 1
    assert "contains a cookie sesame_session (base64-encoded)" in result.stderr


def test_short_secret_not_searched(run_dir):
    plant(run_dir, "pw")
    result = run_checker(run_dir)
    assert result.returncode == 0, result.stderr


def test_nothing_recorded_fails(tmp_path):
    (tmp_path / "serve.log").write_text("INFO sesame: listening\n")
    result = run_checker(tmp_path)
    assert result.returncode == 2
    assert "recorded nothing" in result.stderr
