"""Python authlib configures itself from Sesame's discovery document alone and runs an
OpenID Connect sign-in with PKCE, then checks the ID token, userinfo, introspection and
revocation. test_openid_client.py runs the same flow with Node's openid-client.

authlib's client is given only `server_metadata_url`: it fetches the document itself and
takes the authorization, token and userinfo endpoints, the JWKS URL, the issuer and the
ID token algorithms from it. Introspection and revocation use the endpoints from that same
document, so a wrong endpoint in the document fails this test. Each access token is also
verified as a resource server would, through the JWKS URL of the SesameServer fixture.
"""

import base64
import time

import jwt
import pytest
from authlib.integrations.base_client import (
    BaseApp,
    FrameworkIntegration,
    OAuth2Mixin,
    OpenIDMixin,
)
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.discovery import OpenIDProviderMetadata
from conftest import HTTP_TIMEOUT_SECONDS, check_token_response, query_of
from joserfc.errors import BadSignatureError, InvalidClaimError

PASSWORD = "authlib discovery password"
SCOPE = "openid profile read"


class DiscoveredOpenIDClient(OAuth2Mixin, OpenIDMixin, BaseApp):
    """authlib's OpenID Connect client app on requests, built from the same mixins as the
    Flask client of authlib 1.9 but without a web framework.

    The test keeps the state, nonce and PKCE verifier itself instead of in a user's session.
    """

    client_cls = OAuth2Session


def token_response_checker(verifier, client_id: str):
    """Return an authlib compliance fix that verifies each access token the token endpoint
    returns before authlib parses the response."""

    def register(session: OAuth2Session) -> None:
        session.register_compliance_hook(
            "access_token_response",
            lambda response: check_token_response(verifier, client_id, response),
        )

    return register


def id_token_claims_options(issuer: str, audience: str) -> dict:
    """Return authlib claims options that require the ID token claims Sesame issues and
    check `iss` and `aud` against the expected values."""
    return {
        "iss": {"essential": True, "value": issuer},
        "aud": {"essential": True, "value": audience},
        "nonce": {"essential": True},
        "at_hash": {"essential": True},
        "auth_time": {"essential": True},
    }


def with_altered_signature(id_token: str) -> str:
    """Return `id_token` with one bit of its signature flipped."""
    header, payload, signature = id_token.split(".")
    padding = "=" * (-len(signature) % 4)
    signature_bytes = bytearray(base64.urlsafe_b64decode(signature + padding))
    signature_bytes[0] ^= 0x01
    altered = base64.urlsafe_b64encode(bytes(signature_bytes)).rstrip(b"=").decode()
    return f"{header}.{payload}.{altered}"


def test_authlib_discovery_sign_in(
    sesame, scripted_user, oauth_session, redirect_receiver, verifier
):
    user = sesame.add_user(PASSWORD, email="authlib-discovery@example.test")
    client = sesame.add_web_client(redirect_receiver.url, scopes=["openid", "profile", "read"])
    app = DiscoveredOpenIDClient(
        FrameworkIntegration("sesame"),
        name="sesame",
        client_id=client["id"],
        client_secret=client["secret"],
        server_metadata_url=f"{sesame.issuer}/.well-known/openid-configuration",
        client_kwargs={
            "scope": SCOPE,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
            "default_timeout": HTTP_TIMEOUT_SECONDS,
        },
        compliance_fix=token_response_checker(verifier, client["id"]),
    )

    metadata = app.load_server_metadata()
    OpenIDProviderMetadata(metadata).validate()
    assert metadata["issuer"] == sesame.issuer
    assert "code" in metadata["response_types_supported"]
    assert "S256" in metadata["code_challenge_methods_supported"]
    assert "openid" in metadata["scopes_supported"]
    assert "RS256" in metadata["id_token_signing_alg_values_supported"]
    assert "client_secret_basic" in metadata["token_endpoint_auth_methods_supported"]

    # authlib generates the PKCE verifier and, because the scope contains openid, the nonce.
    authorization = app.create_authorization_url(redirect_uri=redirect_receiver.url)
    assert authorization["url"].startswith(f"{metadata['authorization_endpoint']}?")
    authorization_query = query_of(authorization["url"])
    assert authorization_query["code_challenge_method"] == "S256"
    assert authorization_query["nonce"] == authorization["nonce"]
    assert authorization_query["scope"] == SCOPE

    browser = scripted_user(user, PASSWORD)
    consent = browser.authorize(authorization["url"])
    assert consent.status_code == 200, f"expected the consent page, got {consent.status_code}"
    location = browser.decide(consent, "approve")
    assert location.startswith(f"{redirect_receiver.url}?"), location
    assert query_of(location)["iss"] == metadata["issuer"]

    # authlib checks that the state in `location` matches before it redeems the code.
    token = app.fetch_access_token(
        redirect_uri=redirect_receiver.url,
        authorization_response=location,
        state=authorization["state"],
        code_verifier=authorization["code_verifier"],
    )
    assert token["scope"] == SCOPE
    assert token["refresh_token"]
    assert token["id_token"]

    # parse_id_token fetches the JWKS from the discovered jwks_uri, verifies the signature
    # with the algorithms the document lists, then validates the claims.
    id_token = app.parse_id_token(
        token,
        nonce=authorization["nonce"],
        claims_options=id_token_claims_options(metadata["issuer"], client["id"]),
    )
    header = jwt.get_unverified_header(token["id_token"])
    assert header["alg"] == "RS256"
    assert header["kid"] in [key["kid"] for key in app.fetch_jwk_set()["keys"]]
    assert id_token["iss"] == sesame.issuer
    assert id_token["aud"] == client["id"]
    assert id_token["nonce"] == authorization["nonce"]
    assert id_token["sub"] == str(user["id"])
    assert id_token["auth_time"] <= time.time()

    # The same call must reject an ID token whose signature, nonce, issuer or audience is
    # wrong, or the checks above prove nothing.
    altered_token = {**token, "id_token": with_altered_signature(token["id_token"])}
    with pytest.raises(BadSignatureError):
        app.parse_id_token(
            altered_token,
            nonce=authorization["nonce"],
            claims_options=id_token_claims_options(metadata["issuer"], client["id"]),
        )
    with pytest.raises(InvalidClaimError, match="nonce"):
        app.parse_id_token(
            token,
            nonce="another nonce",
            claims_options=id_token_claims_options(metadata["issuer"], client["id"]),
        )
    with pytest.raises(InvalidClaimError, match="iss"):
        app.parse_id_token(
            token,
            nonce=authorization["nonce"],
            claims_options=id_token_claims_options("http://127.0.0.1:9", client["id"]),
        )
    with pytest.raises(InvalidClaimError, match="aud"):
        app.parse_id_token(
            token,
            nonce=authorization["nonce"],
            claims_options=id_token_claims_options(metadata["issuer"], "another-client"),
        )

    userinfo = app.userinfo(token=token)
    assert userinfo["sub"] == id_token["sub"]
    assert userinfo["preferred_username"] == user["name"]

    # authlib's app has no introspection or revocation call, so a session with the same
    # client credentials sends them to the endpoints authlib discovered.
    session = oauth_session(client, token_endpoint_auth_method="client_secret_basic")
    introspection = session.introspect_token(
        metadata["introspection_endpoint"],
        token=token["access_token"],
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    assert introspection.status_code == 200, introspection.text
    assert introspection.json()["active"] is True
    assert introspection.json()["client_id"] == client["id"]
    assert introspection.json()["sub"] == id_token["sub"]

    revocation = session.revoke_token(
        metadata["revocation_endpoint"],
        token=token["refresh_token"],
        token_type_hint="refresh_token",
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    assert revocation.status_code == 200, revocation.text

    # Revoking a refresh token revokes the access tokens issued in its family.
    for revoked in (token["refresh_token"], token["access_token"]):
        after_revocation = session.introspect_token(
            metadata["introspection_endpoint"], token=revoked, timeout=HTTP_TIMEOUT_SECONDS
        )
        assert after_revocation.status_code == 200, after_revocation.text
        assert after_revocation.json() == {"active": False}
