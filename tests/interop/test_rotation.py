"""Tokens signed before and after `sesame keys --rotate`, verified with PyJWT's PyJWKClient."""

import subprocess
import time

import jwt
import pytest
import requests

from conftest import (
    DECLARED_SCOPES,
    AccessTokenVerifier,
    SesameServer,
    child_environment,
    read_listening_line,
    server_log_path,
    sesame_binary,
    stop,
)

HTTP_TIMEOUT_SECONDS = 10
PROMOTION_TIMEOUT_SECONDS = 15

# A rotated key signs once it has been published for SESAME_JWKS_MAX_AGE seconds.
JWKS_MAX_AGE_SECONDS = 1


@pytest.fixture(scope="module")
def rotating_sesame(tmp_path_factory):
    """Start a `sesame serve` of its own whose rotated keys become current after a second."""
    binary = sesame_binary()
    data_dir = tmp_path_factory.mktemp("sesame-rotation")
    scopes = "".join(f'{name} = "{text}"\n' for name, text in DECLARED_SCOPES.items())
    (data_dir / "sesame.toml").write_text(f"[scopes]\n{scopes}")
    log_path = server_log_path(data_dir)
    environment = child_environment(SESAME_JWKS_MAX_AGE=str(JWKS_MAX_AGE_SECONDS))
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(binary), "--data-dir", str(data_dir), "serve", "--bind", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=environment,
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


def client_credentials_token(server: SesameServer, client: dict) -> str:
    response = requests.post(
        server.token_endpoint,
        data={"grant_type": "client_credentials", "scope": "read"},
        auth=(client["id"], client["secret"]),
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def published_kids(server: SesameServer) -> list[str]:
    document = requests.get(server.jwks_uri, timeout=HTTP_TIMEOUT_SECONDS).json()
    return [key["kid"] for key in document["keys"]]


def caching_verifier(server: SesameServer) -> AccessTokenVerifier:
    """Return a verifier whose PyJWKClient keeps the JWKS as long as Cache-Control allows.

    A rotated key is published for SESAME_JWKS_MAX_AGE before it signs, so such a verifier
    has the new key before any token carries it.
    """
    response = requests.get(server.jwks_uri, timeout=HTTP_TIMEOUT_SECONDS)
    assert response.headers["Cache-Control"] == f"public, max-age={JWKS_MAX_AGE_SECONDS}"
    verifier = AccessTokenVerifier(server.issuer, server.jwks_uri)
    verifier.jwks_client = jwt.PyJWKClient(
        server.jwks_uri, lifespan=JWKS_MAX_AGE_SECONDS, timeout=HTTP_TIMEOUT_SECONDS
    )
    return verifier


def test_tokens_before_and_after_rotation_verify(rotating_sesame):
    client = rotating_sesame.add_client("client", scopes=["read"])
    verifier = caching_verifier(rotating_sesame)
    before = client_credentials_token(rotating_sesame, client)
    old_kid = jwt.get_unverified_header(before)["kid"]
    verifier.verify(before, client["id"])

    rotated = rotating_sesame.cli("keys", "--rotate")

    new_kid = rotated["kid"]
    assert rotated["state"] == "next"
    assert rotated["replaces"] == old_kid
    assert set(published_kids(rotating_sesame)) == {old_kid, new_kid}
    deadline = time.monotonic() + PROMOTION_TIMEOUT_SECONDS
    after = client_credentials_token(rotating_sesame, client)
    while jwt.get_unverified_header(after)["kid"] != new_kid:
        assert time.monotonic() < deadline, "the rotated key never started signing"
        time.sleep(0.2)
        after = client_credentials_token(rotating_sesame, client)

    claims_after = verifier.verify(after, client["id"])
    claims_before = verifier.verify(before, client["id"])
    assert claims_after["jti"] != claims_before["jti"]
    assert set(published_kids(rotating_sesame)) == {old_kid, new_kid}


def test_retired_key_leaves_jwks(rotating_sesame):
    client = rotating_sesame.add_client("client", scopes=["read"])
    first = client_credentials_token(rotating_sesame, client)
    first_kid = jwt.get_unverified_header(first)["kid"]
    rotated = rotating_sesame.cli("keys", "--rotate")
    deadline = time.monotonic() + PROMOTION_TIMEOUT_SECONDS
    while jwt.get_unverified_header(client_credentials_token(rotating_sesame, client))[
        "kid"
    ] != rotated["kid"]:
        assert time.monotonic() < deadline, "the rotated key never started signing"
        time.sleep(0.2)

    retired = rotating_sesame.cli("keys", "--retire", first_kid, "--now")

    assert retired["kid"] == first_kid
    assert first_kid not in published_kids(rotating_sesame)
    fresh_client = jwt.PyJWKClient(rotating_sesame.jwks_uri, timeout=HTTP_TIMEOUT_SECONDS)
    with pytest.raises(jwt.PyJWKClientError):
        fresh_client.get_signing_key_from_jwt(first)
