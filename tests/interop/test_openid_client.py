"""Node's openid-client configures itself from Sesame's discovery document alone, signs a
user in with PKCE, validates the ID token (its signature through the discovered JWKS, and
its claims), reads userinfo, introspects and revokes.

The node script lives in tests/interop/node; `scripts/test` installs its pinned packages.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"
PASSWORD = "openid client password"
REDIRECT_URI = "http://127.0.0.1:9/callback"
TIMEOUT_SECONDS = 60


@pytest.fixture
def node_ready():
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "openid-client").exists():
        pytest.fail(
            "node or openid-client is missing; run `npm ci --prefix tests/interop/node` "
            "(scripts/test does)"
        )


def test_openid_client_flow(node_ready, sesame, scripted_user):
    user = sesame.add_user(PASSWORD, email="oidc@example.test")
    client = sesame.add_web_client(REDIRECT_URI, scopes=["openid", "profile", "read"])
    environment = {
        "ISSUER": sesame.issuer,
        "CLIENT_ID": client["id"],
        "CLIENT_SECRET": client["secret"],
        "REDIRECT_URI": REDIRECT_URI,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "NO_PROXY": "*",
    }
    node = subprocess.Popen(
        ["node", "oidc_flow.mjs"],
        cwd=NODE_DIR,
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = json.loads(node.stdout.readline() or "{}")
        assert "authorization_url" in first, node.stderr.read()
        browser = scripted_user(user, PASSWORD)
        consent = browser.authorize(first["authorization_url"])
        callback = browser.decide(consent, "approve")
        assert callback.startswith(REDIRECT_URI), callback
        node.stdin.write(json.dumps({"callback_url": callback}) + "\n")
        node.stdin.flush()
        result = json.loads(node.stdout.readline() or "{}")
        node.wait(timeout=TIMEOUT_SECONDS)
    finally:
        if node.poll() is None:
            node.kill()
    assert node.returncode == 0, node.stderr.read()

    # openid-client fetches the discovered JWKS only to verify the ID token's signature, so
    # the key that signed the ID token must be in the JWKS it fetched.
    assert result["id_token_header"]["alg"] == "RS256"
    assert result["id_token_header"]["kid"] in result["jwks_kids"]

    claims = result["id_token_claims"]
    assert claims["iss"] == sesame.issuer
    assert claims["aud"] == client["id"]
    assert claims["sub"] == str(user["id"])
    assert result["userinfo"]["sub"] == str(user["id"])
    assert result["userinfo"]["name"] == user["name"]
    assert result["introspection"]["active"] is True
    assert result["introspection"]["client_id"] == client["id"]
    assert result["after_revocation"] == {"active": False}
