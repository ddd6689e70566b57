"""The client credentials grant, driven by authlib's requests-based OAuth2Session."""

import pytest
from authlib.integrations.base_client import OAuthError


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_client_credentials_token(sesame, verifier, oauth_session, auth_method):
    client = sesame.add_client("client", scopes=["read", "write"])
    session = oauth_session(client, token_endpoint_auth_method=auth_method, scope="read")

    token = session.fetch_token(sesame.token_endpoint, grant_type="client_credentials")

    assert token["token_type"] == "Bearer"
    assert token["scope"] == "read"
    assert "refresh_token" not in token
    claims = verifier.verify(token["access_token"], client["id"], token["expires_in"])
    assert claims["sub"] == client["id"]
    assert claims["scope"] == "read"
    assert claims["scopes"] == ["read"]


def test_client_credentials_without_scope(sesame, verifier, oauth_session):
    client = sesame.add_client("client", scopes=["read"])
    session = oauth_session(client)

    token = session.fetch_token(sesame.token_endpoint, grant_type="client_credentials")

    claims = verifier.verify(token["access_token"], client["id"], token["expires_in"])
    assert claims["scope"] == ""
    assert claims["scopes"] == []


def test_client_credentials_each_token_unique(sesame, verifier, oauth_session):
    client = sesame.add_client("client", scopes=["read"])
    session = oauth_session(client, scope="read")

    first = session.fetch_token(sesame.token_endpoint, grant_type="client_credentials")
    second = session.fetch_token(sesame.token_endpoint, grant_type="client_credentials")

    first_claims = verifier.verify(first["access_token"], client["id"])
    second_claims = verifier.verify(second["access_token"], client["id"])
    assert first_claims["jti"] != second_claims["jti"]


def test_client_credentials_wrong_secret(sesame, oauth_session):
    client = sesame.add_client("client", scopes=["read"])
    session = oauth_session({"id": client["id"], "secret": client["secret"] + "x"})

    with pytest.raises(OAuthError) as raised:
        session.fetch_token(sesame.token_endpoint, grant_type="client_credentials")

    assert raised.value.error == "invalid_client"


def test_client_credentials_scope_not_allowed(sesame, oauth_session):
    client = sesame.add_client("client", scopes=["read"])
    session = oauth_session(client, scope="read write")

    with pytest.raises(OAuthError) as raised:
        session.fetch_token(sesame.token_endpoint, grant_type="client_credentials")

    assert raised.value.error == "invalid_scope"


def test_client_credentials_revoked_client(sesame, oauth_session):
    client = sesame.add_client("client", scopes=["read"])
    session = oauth_session(client, scope="read")
    session.fetch_token(sesame.token_endpoint, grant_type="client_credentials")

    sesame.cli("client", "revoke", client["id"])

    with pytest.raises(OAuthError) as raised:
        session.fetch_token(sesame.token_endpoint, grant_type="client_credentials")
    assert raised.value.error == "invalid_client"


def test_client_token_refused_at_userinfo(sesame, oauth_session, userinfo):
    client = sesame.add_client("client", scopes=["read"])
    session = oauth_session(client, scope="read")
    token = session.fetch_token(sesame.token_endpoint, grant_type="client_credentials")

    response = userinfo(token["access_token"])

    assert response.status_code == 403
