"""Fixtures that run a real `sesame serve` and check its tokens with third-party libraries.

Nothing here imports Sesame code: the server is the compiled binary (env SESAME_BIN, default
target/debug/sesame in the repository), driven over HTTP and through its CLI.
"""

import base64
import json
import os
import re
import selectors
import signal
import subprocess
import threading
import time
import uuid
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, unquote_plus, urljoin, urlsplit

import jwt
import pytest
import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session

REPO_ROOT = Path(__file__).resolve().parents[2]

STARTUP_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 15
CLI_TIMEOUT_SECONDS = 60
HTTP_TIMEOUT_SECONDS = 10

LISTENING_LINE = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")

# Scopes declared in the server's sesame.toml, beside the built-in ones.
DECLARED_SCOPES = {"read": "Read things", "write": "Write things"}

# Sesame's log filter for every server and CLI run the tests start.
SESAME_LOG_FILTER = "sesame=debug"

# When set, the directory for this suite run's logs and the secrets the tests handle, which
# scripts/check-log-secrets searches the logs for. See record_secret.
LOG_DIR = Path(os.environ["SESAME_TEST_LOG_DIR"]) if os.environ.get("SESAME_TEST_LOG_DIR") else None

# Form, query and JSON field names whose values are secrets.
SECRET_FIELDS = {
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "client_secret",
    "secret",
    "code",
    "code_verifier",
    "device_code",
    "user_code",
    "password",
    "_csrf",
}

# The tests talk only to the server they start on loopback, so no proxy from the
# environment may carry their requests (requests and urllib both read these variables).
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def record_secret(kind: str, value: str) -> None:
    """Append a secret of `kind` to LOG_DIR/secrets.jsonl, when LOG_DIR is set."""
    if LOG_DIR is None or not value:
        return
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with (LOG_DIR / "secrets.jsonl").open("a") as secrets:
        secrets.write(json.dumps({"kind": kind, "value": value}) + "\n")


def record_pairs(pairs) -> None:
    for name, value in pairs:
        if name in SECRET_FIELDS:
            record_secret(name, value)


def record_json(value) -> None:
    """Record the string values of secret fields anywhere in a JSON document."""
    if isinstance(value, dict):
        for name, field in value.items():
            if name in SECRET_FIELDS and isinstance(field, str):
                record_secret(name, field)
            else:
                record_json(field)
    elif isinstance(value, list):
        for item in value:
            record_json(item)


CSRF_FIELD = re.compile(r'name="_csrf" value="([^"]*)"')


def record_request(request: requests.PreparedRequest) -> None:
    """Record the secrets a request sends: credentials, cookies and secret form fields."""
    authorization = request.headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "basic":
        decoded = base64.b64decode(credentials).decode(errors="replace")
        record_secret("client_secret", unquote_plus(decoded.partition(":")[2]))
    elif scheme.lower() == "bearer":
        record_secret("access_token", credentials)
    for cookie in request.headers.get("Cookie", "").split(";"):
        name, _, value = cookie.strip().partition("=")
        record_secret(f"cookie {name}", value)
    record_pairs(parse_qsl(urlsplit(request.url).query))
    body = request.body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if not isinstance(body, str):
        return
    content_type = request.headers.get("Content-Type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        record_pairs(parse_qsl(body))
    elif content_type.startswith("application/json"):
        try:
            record_json(json.loads(body))
        except ValueError:
            pass


def record_response(response: requests.Response) -> None:
    """Record the secrets a response carries: cookies, an authorization code in Location,
    secret JSON fields and hidden CSRF inputs."""
    for cookie in response.cookies:
        record_secret(f"cookie {cookie.name}", cookie.value or "")
    location = response.headers.get("Location", "")
    record_pairs(parse_qsl(urlsplit(location).query))
    content_type = response.headers.get("Content-Type", "")
    if content_type.startswith("application/json"):
        try:
            record_json(response.json())
        except ValueError:
            pass
    elif content_type.startswith("text/html"):
        for value in CSRF_FIELD.findall(response.text):
            record_secret("_csrf", value)


if LOG_DIR is not None:
    # Every HTTP client the Python tests use (requests, and authlib's OAuth2Session built on
    # it) sends through Session.send, so this records each request and response once. The
    # Node client and Chromium in the browser tests are not covered.
    unrecorded_send = requests.Session.send

    def recording_send(self, request, **kwargs):
        record_request(request)
        response = unrecorded_send(self, request, **kwargs)
        record_response(response)
        return response

    requests.Session.send = recording_send


def server_log_path(data_dir: Path) -> Path:
    """Return the file a `sesame serve` run logs to: a new file in LOG_DIR when it is set, so
    the log outlives the temporary data directory, and serve.log in `data_dir` otherwise."""
    if LOG_DIR is None:
        return data_dir / "serve.log"
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return LOG_DIR / f"serve-{uuid.uuid4().hex[:12]}.log"


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
    environment["RUST_LOG"] = SESAME_LOG_FILTER
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
        self.authorization_endpoint = f"{issuer}/oauth/authorize"
        self.device_authorization_endpoint = f"{issuer}/oauth/device/code"
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
        if LOG_DIR is not None:
            LOG_DIR.mkdir(parents=True, exist_ok=True)
            (LOG_DIR / f"cli-{uuid.uuid4().hex[:12]}.log").write_text(result.stderr)
        if result.returncode != 0:
            raise AssertionError(
                f"`sesame {' '.join(args)}` exited with {result.returncode}: {result.stderr}"
            )
        output = json.loads(result.stdout)
        record_json(output)
        return output

    def add_user(self, password: str, email: str | None = None) -> dict:
        """Add a user with a fresh unique name and return `{"id", "name"}`."""
        name = f"user_{uuid.uuid4().hex[:12]}"
        record_secret("password", password)
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

    def add_web_client(
        self,
        redirect_uri: str,
        *,
        public: bool = False,
        first_party: bool = False,
        scopes: list[str] | None = None,
        name: str | None = None,
    ) -> dict:
        """Create an authorization code client for `redirect_uri` and return it.

        The client is confidential (with a secret) unless `public` is set, in which case it
        has no secret and must use PKCE.
        """
        kind = "public" if public else "web"
        name = name or f"Interop {kind} app {uuid.uuid4().hex[:8]}"
        args = ["client", "--redirect-uri", redirect_uri, "--name", name]
        if public:
            args.append("--public")
        if first_party:
            args.append("--first-party")
        if scopes is not None:
            args += ["--scopes", ",".join(scopes)]
        return self.cli(*args)

    def current_personal_access_client_id(self) -> str:
        """Return the id of the one personal access client that is not revoked."""
        clients = self.cli("client", "list")["clients"]
        current = [
            client
            for client in clients
            if client["personal_access_client"] and not client["revoked"]
        ]
        assert len(current) == 1, f"expected one personal access client, found {current}"
        return current[0]["id"]

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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so that a fixture's teardown can tell
    whether the test failed (the browser fixture then saves the page)."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


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
    log_path = server_log_path(data_dir)
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


def check_token_response(
    verifier: AccessTokenVerifier, client_id: str, response: requests.Response
) -> requests.Response:
    """Check a token endpoint response's headers and verify its access token through the
    JWKS, before authlib parses it."""
    assert response.headers.get("Cache-Control") == "no-store"
    if response.status_code == 200:
        body = response.json()
        assert body["token_type"] == "Bearer"
        verifier.verify(body["access_token"], client_id, expires_in=body["expires_in"])
    return response


@pytest.fixture
def oauth_session(sesame, verifier):
    """Return a factory of authlib OAuth2Sessions for a client created by the CLI.

    Every token response such a session receives has its access token verified through the
    JWKS before authlib parses it, so no token obtained through such a session goes unchecked.
    """
    sessions = []

    def make_session(client: dict, **options) -> OAuth2Session:
        session = OAuth2Session(client["id"], client["secret"], **options)
        session.register_compliance_hook(
            "access_token_response",
            lambda response: check_token_response(verifier, client["id"], response),
        )
        session.register_compliance_hook(
            "refresh_token_response",
            lambda response: check_token_response(verifier, client["id"], response),
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


def single_values(query: str) -> dict[str, str]:
    """Parse a query string whose parameters must each appear once into a dict."""
    parsed = parse_qs(query, keep_blank_values=True)
    repeated = sorted(name for name, values in parsed.items() if len(values) > 1)
    assert not repeated, f"parameters {repeated} appear more than once in {query!r}"
    return {name: values[0] for name, values in parsed.items()}


def query_of(url: str) -> dict[str, str]:
    """Return the query parameters of `url`, each of which must appear once."""
    return single_values(urlsplit(url).query)


class RedirectReceiver:
    """A client's redirect URI: a loopback HTTP server that records the query of each request
    to its callback path and returns a small page, so that a browser really lands on it.
    """

    CALLBACK_PATH = "/callback"
    PAGE = b"<!doctype html><title>Client callback</title><h1>Callback received</h1>"

    def __init__(self):
        self.queries: list[dict[str, str]] = []
        self._received = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                if parts.path != RedirectReceiver.CALLBACK_PATH:
                    self.send_error(404)
                    return
                receiver.record(parts.query)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(RedirectReceiver.PAGE)))
                self.end_headers()
                self.wfile.write(RedirectReceiver.PAGE)

            def log_message(self, format, *args):
                # The browser's requests would otherwise be printed into pytest's output.
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}{self.CALLBACK_PATH}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def record(self, query: str) -> None:
        with self._received:
            self.queries.append(single_values(query))
            self._received.notify_all()

    def wait_for_state(self, state: str, timeout: float = HTTP_TIMEOUT_SECONDS) -> dict:
        """Return the first query received with `state`, waiting up to `timeout` seconds."""

        def find() -> dict | None:
            return next((query for query in self.queries if query.get("state") == state), None)

        with self._received:
            query = self._received.wait_for(find, timeout)
        assert query is not None, (
            f"the redirect URI received no request with state {state!r} within {timeout} s; "
            f"it received {self.queries}"
        )
        return query

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=STOP_TIMEOUT_SECONDS)


@pytest.fixture(scope="session")
def redirect_receiver() -> RedirectReceiver:
    receiver = RedirectReceiver()
    yield receiver
    receiver.close()


class Form:
    """One HTML form: its action, method, the fields a browser would submit, and its buttons."""

    def __init__(self, action: str, method: str):
        self.action = action
        self.method = method
        self.fields: list[tuple[str, str]] = []
        self.buttons: list[dict[str, str | None]] = []


class FormParser(HTMLParser):
    """Collect the forms of a page. Unchecked checkboxes and radio buttons are left out, as a
    browser leaves them out of a submission."""

    def __init__(self):
        super().__init__()
        self.forms: list[Form] = []
        self._open: Form | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            method = (attributes.get("method") or "get").lower()
            self._open = Form(attributes.get("action") or "", method)
            self.forms.append(self._open)
            return
        if self._open is None:
            return
        input_type = (attributes.get("type") or "text").lower()
        if tag == "button" or (tag == "input" and input_type == "submit"):
            self._open.buttons.append(attributes)
        elif tag == "input" and attributes.get("name"):
            if input_type in ("checkbox", "radio") and "checked" not in attributes:
                return
            self._open.fields.append((attributes["name"], attributes.get("value") or ""))
        elif tag == "textarea" and attributes.get("name"):
            self._open.fields.append((attributes["name"], ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self._open = None


def find_form(html: str, *, button_id: str | None = None, action: str | None = None) -> Form:
    """Return the form of `html` that contains the button `button_id` or posts to `action`."""
    parser = FormParser()
    parser.feed(html)
    for form in parser.forms:
        if button_id is not None and any(b.get("id") == button_id for b in form.buttons):
            return form
        if action is not None and form.action == action:
            return form
    raise AssertionError(
        f"no form with button id {button_id!r} or action {action!r} in the page: {html[:2000]}"
    )


def is_login_page(response: requests.Response) -> bool:
    return response.status_code == 200 and urlsplit(response.url).path == "/login"


class ScriptedUser:
    """A browser stand-in for one user: a requests.Session that keeps Sesame's session
    cookie, follows redirects within Sesame and submits Sesame's forms with their hidden
    fields (CSRF token, request id).

    A redirect that leaves Sesame, such as the one to a client's redirect URI, is returned
    unfollowed, so that the test reads its Location.
    """

    MAX_REDIRECTS = 10

    def __init__(self, issuer: str, username: str, password: str):
        self.issuer = issuer
        self.username = username
        self.password = password
        self.http = requests.Session()

    def get(self, url: str) -> requests.Response:
        response = self.http.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS)
        return self.follow(response)

    def follow(self, response: requests.Response) -> requests.Response:
        """Follow redirects that stay on Sesame and return the first other response."""
        for _ in range(self.MAX_REDIRECTS):
            if not response.is_redirect:
                return response
            target = urljoin(response.url, response.headers["Location"])
            if not target.startswith(f"{self.issuer}/"):
                return response
            response = self.http.get(
                target, allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS
            )
        raise AssertionError(
            f"more than {self.MAX_REDIRECTS} redirects, the last to {response.url}"
        )

    def submit(
        self,
        page: requests.Response,
        *,
        button_id: str | None = None,
        action: str | None = None,
        fields: dict[str, str] | None = None,
    ) -> requests.Response:
        """Submit a form of `page` as a browser would after the user filled in `fields` and
        pressed the button `button_id` (or the form's only submit button)."""
        form = find_form(page.text, button_id=button_id, action=action)
        assert form.method == "post", f"the form posts with {form.method}"
        fields = fields or {}
        data = [(name, value) for name, value in form.fields if name not in fields]
        data += list(fields.items())
        buttons = [b for b in form.buttons if button_id is None or b.get("id") == button_id]
        assert len(buttons) == 1, f"expected one submit button, found {buttons}"
        if buttons[0].get("name"):
            data.append((buttons[0]["name"], buttons[0].get("value") or ""))
        url = urljoin(page.url, form.action or page.url)
        response = self.http.post(
            url, data=data, allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS
        )
        return self.follow(response)

    def sign_in(self, login_page: requests.Response, password: str | None = None):
        """Fill in and submit the sign-in form on `login_page` and return the next page."""
        assert is_login_page(login_page), f"not the sign-in page: {login_page.url}"
        credentials = {
            "username": self.username,
            "password": self.password if password is None else password,
        }
        return self.submit(login_page, action="/login", fields=credentials)

    def authorize(self, authorization_url: str) -> requests.Response:
        """Open `authorization_url`, signing in if Sesame shows the sign-in page, and
        return the consent page or the redirect to the client."""
        page = self.get(authorization_url)
        if is_login_page(page):
            page = self.sign_in(page)
        return page

    def decide(self, consent_page: requests.Response, button_id: str) -> str:
        """Press `approve` or `deny` on the consent page and return where Sesame redirects."""
        response = self.submit(consent_page, button_id=button_id)
        assert response.status_code == 303, (
            f"the decision returned {response.status_code}, not a redirect: {response.text[:500]}"
        )
        return response.headers["Location"]

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def scripted_user(sesame):
    """Return a factory of ScriptedUsers for a user record and its password."""
    users = []

    def make(user: dict, password: str) -> ScriptedUser:
        scripted = ScriptedUser(sesame.issuer, user["name"], password)
        users.append(scripted)
        return scripted

    yield make

    for scripted in users:
        scripted.close()


DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def request_device_code(sesame: SesameServer, session: OAuth2Session, scope: str) -> dict:
    """Start a device authorization with the client of `session` and return the response."""
    response = session.post(
        sesame.device_authorization_endpoint,
        data={"scope": scope},
        auth=session.client_auth(session.token_endpoint_auth_method),
        withhold_token=True,
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    assert response.status_code == 200, response.text
    assert response.headers.get("Cache-Control") == "no-store"
    return response.json()


class DevicePoller(threading.Thread):
    """Poll the token endpoint for a device code as RFC 8628 §3.5 requires of a device.

    The poller waits `interval` seconds between polls and 5 seconds more after each
    `slow_down`. It stops at tokens, at any other error, or when the device code expires.
    """

    def __init__(self, session: OAuth2Session, token_endpoint: str, authorization: dict):
        super().__init__(daemon=True)
        self.session = session
        self.token_endpoint = token_endpoint
        self.authorization = authorization
        self.errors: list[str] = []
        self.token: dict | None = None
        self.exception: BaseException | None = None
        self.first_response = threading.Event()
        self._stopped = threading.Event()

    def run(self) -> None:
        interval = self.authorization["interval"]
        deadline = time.monotonic() + self.authorization["expires_in"]
        while not self._stopped.is_set() and time.monotonic() < deadline:
            try:
                self.token = self.session.fetch_token(
                    self.token_endpoint,
                    grant_type=DEVICE_CODE_GRANT,
                    device_code=self.authorization["device_code"],
                )
                return
            except OAuthError as error:
                self.errors.append(error.error)
                if error.error == "slow_down":
                    interval += 5
                elif error.error != "authorization_pending":
                    return
            except Exception as error:
                # result() raises it again in the test's thread.
                self.exception = error
                return
            finally:
                self.first_response.set()
            self._stopped.wait(interval)

    def wait_for_first_response(self, timeout: float = HTTP_TIMEOUT_SECONDS) -> None:
        assert self.first_response.wait(timeout), f"no poll answered within {timeout} s"

    def result(self, timeout: float) -> dict | None:
        """Wait for polling to end and return the token, or None after a final error."""
        self.join(timeout)
        if self.is_alive():
            self._stopped.set()
            raise AssertionError(
                f"polling did not end within {timeout} s, errors received: {self.errors}"
            )
        if self.exception is not None:
            raise self.exception
        return self.token

    def stop(self) -> None:
        self._stopped.set()
        self.join(HTTP_TIMEOUT_SECONDS)
