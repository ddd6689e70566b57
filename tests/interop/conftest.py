"""Fixtures that run a real `sesame serve` and check its tokens with third-party libraries.

Nothing here imports Sesame code: the server is the compiled binary (env SESAME_BIN, default
target/debug/sesame in the repository), driven over HTTP and through its CLI.
"""

import json
import os
import re
import selectors
import signal
import subprocess
import time
import uuid
from pathlib import Path

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

REPO_ROOT = Path(__file__).resolve().parents[2]

STARTUP_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 15
CLI_TIMEOUT_SECONDS = 60
HTTP_TIMEOUT_SECONDS = 10

LISTENING_LINE = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")

# Scopes declared in the server's sesame.toml, beside the built-in ones.
DECLARED_SCOPES = {"read": "Read things", "write": "Write things"}

# The tests talk only to the server they start on loopback, so no proxy from the
# environment may carry their requests (requests and urllib both read these variables).
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def sesame_binary() -> Path:
    binary = Path(os.environ.get("SESAME_BIN", REPO_ROOT / "target" / "debug" / "sesame"))
    if not binary.is_file():
        pytest.fail(f"Sesame binary not found at {binary}: run `cargo build` or set SESAME_BIN")
    return binary


def child_environment(**extra: str) -> dict:
    """Return this process's environment without SESAME_* variables, plus `extra`.

    Removing the inherited SESAME_* settings keeps a developer's own configuration out of
    the server and the CLI that the tests start.
    """
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("SESAME_")
    }
    environment["NO_COLOR"] = "1"
    environment.update(extra)
    return environment


class SesameServer:
    """A running `sesame serve`, its data directory, and the CLI pointed at both."""

    def __init__(self, binary: Path, data_dir: Path, issuer: str, log_path: Path):
        self.binary = binary
        self.data_dir = data_dir
        self.issuer = issuer
        self.log_path = log_path
        self.token_endpoint = f"{issuer}/oauth/token"
        self.userinfo_endpoint = f"{issuer}/oauth/userinfo"
        self.jwks_uri = f"{issuer}/oauth/jwks"

    def cli(self, *args: str, stdin: str | None = None) -> dict:
        """Run one `sesame` command on the server's data directory and return its JSON output.

        SESAME_ISSUER is set so that tokens the CLI signs name the running server as issuer.
        """
        command = [str(self.binary), "--data-dir", str(self.data_dir), "--json", *args]
        result = subprocess.run(
            command,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=child_environment(SESAME_ISSUER=self.issuer),
            timeout=CLI_TIMEOUT_SECONDS,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"`sesame {' '.join(args)}` exited with {result.returncode}: {result.stderr}"
            )
        return json.loads(result.stdout)

    def add_user(self, password: str, email: str | None = None) -> dict:
        """Add a user with a fresh unique name and return `{"id", "name"}`."""
        name = f"user_{uuid.uuid4().hex[:12]}"
        args = ["user", "add", name, "--password-stdin"]
        if email is not None:
            args += ["--email", email]
        return self.cli(*args, stdin=f"{password}\n")

    def add_client(self, kind: str, scopes: list[str] | None = None) -> dict:
        """Create a client of `kind` (`client` or `password`) and return it with its secret."""
        args = ["client", f"--{kind}", "--name", f"interop {kind} {uuid.uuid4().hex[:8]}"]
        if scopes is not None:
            args += ["--scopes", ",".join(scopes)]
        return self.cli(*args)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def read_listening_line(process: subprocess.Popen, log_path: Path) -> str:
    """Wait for the first stdout line of `sesame serve` and return the issuer it names."""
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    ready = selector.select(STARTUP_TIMEOUT_SECONDS)
    selector.close()
    if not ready:
        raise TimeoutError(
            f"sesame serve printed no listening line within {STARTUP_TIMEOUT_SECONDS} s; "
            f"log: {log_path}"
        )
    line = process.stdout.readline().strip()
    match = LISTENING_LINE.fullmatch(line)
    if match is None:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
        raise RuntimeError(
            f"sesame serve printed {line!r} instead of its listening line "
            f"(exit code {process.returncode}): {log_path.read_text(errors='replace')}"
        )
    return match.group(1)


def stop(process: subprocess.Popen) -> int:
    """Send SIGTERM and return the exit code, killing the process if it does not stop."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"sesame serve did not stop within {STOP_TIMEOUT_SECONDS} s of SIGTERM")


@pytest.fixture(scope="session")
def sesame(tmp_path_factory) -> SesameServer:
    """Start `sesame serve` on a free loopback port with a fresh data directory.

    The server installs itself on this first start. All tests share it, and each test or test
    module creates the users and clients it uses, so no test depends on another's state.
    """
    binary = sesame_binary()
    data_dir = tmp_path_factory.mktemp("sesame")
    scopes = "".join(f'{name} = "{text}"\n' for name, text in DECLARED_SCOPES.items())
    (data_dir / "sesame.toml").write_text(f"[scopes]\n{scopes}")
    log_path = data_dir / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(binary), "--data-dir", str(data_dir), "serve", "--bind", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=child_environment(),
        )
    try:
        issuer = read_listening_line(process, log_path)
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait()
        raise

    server = SesameServer(binary, data_dir, issuer, log_path)
    yield server

    exit_code = stop(process)
    process.stdout.close()
    assert exit_code == 0, f"sesame serve exited with {exit_code}: {server.log_tail()}"


class AccessTokenVerifier:
    """Check access tokens as a resource server using PyJWT would.

    The signing key is looked up by the header's `kid` in the server's JWKS, and the token
    must be an RFC 9068 `at+jwt` for this issuer and audience (the audience defaults to the
    issuer).
    """

    def __init__(self, issuer: str, jwks_uri: str):
        self.issuer = issuer
        self.jwks_client = jwt.PyJWKClient(jwks_uri, timeout=HTTP_TIMEOUT_SECONDS)

    def verify(self, token: str, client_id: str, expires_in: int | None = None) -> dict:
        """Verify `token` for `client_id` and return its claims.

        `expires_in`, when given, is the lifetime the token response announced, in seconds.
        """
        header = jwt.get_unverified_header(token)
        assert header.get("typ") == "at+jwt"
        assert header.get("alg") == "RS256"
        assert header.get("kid"), "the token header has no kid"

        signing_key = self.jwks_client.get_signing_key_from_jwt(token)
        assert signing_key.key_id == header["kid"]

        claims = jwt.decode(
            token,
            signing_key.key,
            algorithms=["RS256"],
            audience=self.issuer,
            issuer=self.issuer,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
        )
        assert claims["iss"] == self.issuer
        assert claims["aud"] == self.issuer
        assert claims["client_id"] == client_id
        assert isinstance(claims["sub"], str)
        assert claims["exp"] > time.time()
        assert claims["iat"] <= time.time()
        assert claims["scopes"] == claims["scope"].split()
        if "nbf" in claims:
            assert claims["nbf"] == claims["iat"]
        if expires_in is not None:
            assert claims["exp"] - claims["iat"] == expires_in
        return claims


@pytest.fixture(scope="session")
def verifier(sesame) -> AccessTokenVerifier:
    return AccessTokenVerifier(sesame.issuer, sesame.jwks_uri)


@pytest.fixture
def oauth_session(sesame, verifier):
    """Return a factory of authlib OAuth2Sessions for a client created by the CLI.

    Every token response such a session receives has its access token verified through the
    JWKS before authlib parses it, so no token obtained through such a session goes unchecked.
    """
    sessions = []

    def check_token_response(client_id: str, response: requests.Response) -> requests.Response:
        assert response.headers.get("Cache-Control") == "no-store"
        if response.status_code == 200:
            body = response.json()
            assert body["token_type"] == "Bearer"
            verifier.verify(body["access_token"], client_id, expires_in=body["expires_in"])
        return response

    def make_session(client: dict, **options) -> OAuth2Session:
        session = OAuth2Session(client["id"], client["secret"], **options)
        session.register_compliance_hook(
            "access_token_response",
            lambda response: check_token_response(client["id"], response),
        )
        session.register_compliance_hook(
            "refresh_token_response",
            lambda response: check_token_response(client["id"], response),
        )
        sessions.append(session)
        return session

    yield make_session

    for session in sessions:
        session.close()


@pytest.fixture
def userinfo(sesame):
    """Return a function that calls /oauth/userinfo with a given bearer token."""

    def call(access_token: str) -> requests.Response:
        return requests.get(
            sesame.userinfo_endpoint,
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=HTTP_TIMEOUT_SECONDS,
        )

    return call
