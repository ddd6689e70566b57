"""Python authlib configures itself from Sesame's discovery document alone and runs an
OpenID Connect sign-in with PKCE, then checks the ID token, userinfo, introspection and
revocation. test_openid_client.py runs the same flow with Node's openid-client.

The client calls only the discovery URL and the endpoints that the document names, so a
wrong endpoint in the document fails this test. The oauth_session fixture also verifies each
access token, using the JWKS URL of the SesameServer fixture.
"""

import time

import requests
from authlib.common.security import generate_token
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata
from conftest import HTTP_TIMEOUT_SECONDS, query_of

PASSWORD = "authlib discovery password"
SCOPE = "openid profile read"


def fetch_json(url: str) -> dict:
    response = requests.get(url, timeout=HTTP_TIMEOUT_SECONDS)
    assert response.status_code == 200, f"GET {url} returned {response.status_code}"
    return response.json()


def test_authlib_discovery_sign_in(sesame, scripted_user, oauth_session, redirect_receiver):
    metadata = OpenIDProviderMetadata(
        fetch_json(f"{sesame.issuer}/.well-known/openid-configuration")
    )
    metadata.validate()
    assert metadata["issuer"] == sesame.issuer
    assert "code" in metadata["response_types_supported"]
    assert "S256" in metadata["code_challenge_methods_supported"]
    assert "openid" in metadata["scopes_supported"]
    assert "RS256" in metadata["id_token_signing_alg_values_supported"]
    assert "client_secret_basic" in metadata["token_endpoint_auth_methods_supported"]

    user = sesame.add_user(PASSWORD, email="authlib-discovery@example.test")
    client = sesame.add_web_client(redirect_receiver.url, scopes=["openid", "profile", "read"])
    # The token endpoint goes into the session's metadata, so fetch_token needs no URL.
    session = oauth_session(
        client,
        scope=SCOPE,
        redirect_uri=redirect_receiver.url,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
        token_endpoint=metadata["token_endpoint"],
    )

    code_verifier = generate_token(48)
    nonce = generate_token(24)
    url, state = session.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=code_verifier, nonce=nonce
    )
    browser = scripted_user(user, PASSWORD)
    consent = browser.authorize(url)
    assert consent.status_code == 200, f"expected the consent page, got {consent.status_code}"
    location = browser.decide(consent, "approve")
    assert location.startswith(f"{redirect_receiver.url}?"), location
    assert query_of(location)["iss"] == metadata["issuer"]

    token = session.fetch_token(
        authorization_response=location, state=state, code_verifier=code_verifier
    )
    assert token["scope"] == SCOPE
    assert token["refresh_token"]
    assert token["id_token"]

    jwks = JsonWebKey.import_key_set(fetch_json(metadata["jwks_uri"]))
    id_token = jwt.decode(
        token["id_token"],
        jwks,
        claims_cls=CodeIDToken,
        claims_options={
            "iss": {"essential": True, "value": metadata["issuer"]},
            "aud": {"essential": True, "value": client["id"]},
            "nonce": {"essential": True, "value": nonce},
            "at_hash": {"essential": True},
            "auth_time": {"essential": True},
        },
        claims_params={"nonce": nonce, "access_token": token["access_token"]},
    )
    id_token.validate()
    assert id_token.header["alg"] == "RS256"
    assert id_token["sub"] == str(user["id"])
    assert id_token["auth_time"] <= time.time()

    userinfo = session.get(metadata["userinfo_endpoint"], timeout=HTTP_TIMEOUT_SECONDS)
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == id_token["sub"]
    assert userinfo.json()["preferred_username"] == user["name"]

    introspection = session.introspect_token(
        metadata["introspection_endpoint"], token=token["access_token"]
    )
    assert introspection.status_code == 200, introspection.text
    assert introspection.json()["active"] is True
    assert introspection.json()["client_id"] == client["id"]
    assert introspection.json()["sub"] == id_token["sub"]

    revocation = session.revoke_token(
        metadata["revocation_endpoint"],
        token=token["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert revocation.status_code == 200, revocation.text

    # Revoking a refresh token revokes the access tokens issued in its family.
    after_revocation = session.introspect_token(
        metadata["introspection_endpoint"], token=token["access_token"]
    )
    assert after_revocation.status_code == 200, after_revocation.text
    assert after_revocation.json() == {"active": False}
