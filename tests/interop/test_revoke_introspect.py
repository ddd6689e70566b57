"""Revocation (RFC 7009), introspection (RFC 7662) and metadata (RFC 8414) through authlib
and requests."""

import pytest
import requests
from authlib.integrations.base_client import OAuthError
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

HTTP_TIMEOUT_SECONDS = 10
PASSWORD = "interop revocation password"


@pytest.fixture(scope="module")
def endpoints(sesame):
    """The server's metadata document."""
    response = requests.get(
        f"{sesame.issuer}/.well-known/oauth-authorization-server", timeout=HTTP_TIMEOUT_SECONDS
    )
    assert response.status_code == 200
    return response.json()


@pytest.fixture(scope="module")
def machine_client(sesame):
    return sesame.add_client("client", scopes=["read", "write"])


@pytest.fixture(scope="module")
def resource_server(sesame):
    return sesame.add_client("resource-server")


def introspect_as(client: dict, endpoint: str, token: str) -> requests.Response:
    return requests.post(
        endpoint,
        data={"token": token},
        auth=(client["id"], client["secret"]),
        timeout=HTTP_TIMEOUT_SECONDS,
    )


def test_metadata_names_endpoints(sesame, endpoints):
    metadata = AuthorizationServerMetadata(endpoints)

    # Every member authlib checks.
    for name in dir(metadata):
        if name.startswith("validate_"):
            getattr(metadata, name)()
    assert endpoints["issuer"] == sesame.issuer
    assert endpoints["revocation_endpoint"] == f"{sesame.issuer}/oauth/revoke"
    assert endpoints["introspection_endpoint"] == f"{sesame.issuer}/oauth/introspect"
    assert endpoints["jwks_uri"] == sesame.jwks_uri


def test_openid_configuration_matches(sesame, endpoints):
    response = requests.get(
        f"{sesame.issuer}/.well-known/openid-configuration", timeout=HTTP_TIMEOUT_SECONDS
    )

    assert response.status_code == 200
    document = response.json()
    for name in ("issuer", "token_endpoint", "revocation_endpoint", "introspection_endpoint"):
        assert document[name] == endpoints[name]


def test_introspect_own_token(oauth_session, machine_client, endpoints):
    session = oauth_session(machine_client, scope="read")
    token = session.fetch_token(endpoints["token_endpoint"], grant_type="client_credentials")

    response = session.introspect_token(
        endpoints["introspection_endpoint"], token=token["access_token"]
    )

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = response.json()
    assert body["active"] is True
    assert body["client_id"] == machine_client["id"]
    assert body["sub"] == machine_client["id"]
    assert body["scope"] == "read"
    assert body["token_type"] == "Bearer"
    assert isinstance(body["exp"], int)
    assert body["iss"] == endpoints["issuer"]


def test_revoke_access_token(oauth_session, machine_client, resource_server, endpoints):
    session = oauth_session(machine_client, scope="read")
    token = session.fetch_token(endpoints["token_endpoint"], grant_type="client_credentials")
    access_token = token["access_token"]
    assert introspect_as(resource_server, endpoints["introspection_endpoint"], access_token).json()[
        "active"
    ]

    response = session.revoke_token(
        endpoints["revocation_endpoint"], token=access_token, token_type_hint="access_token"
    )

    assert response.status_code == 200
    assert response.text == ""
    answer = introspect_as(resource_server, endpoints["introspection_endpoint"], access_token)
    assert answer.json() == {"active": False}


def test_revoke_unknown_token(oauth_session, machine_client, endpoints):
    session = oauth_session(machine_client)

    response = session.revoke_token(endpoints["revocation_endpoint"], token="no-such-token")

    assert response.status_code == 200
    assert response.text == ""


def test_other_client_cannot_revoke(sesame, oauth_session, machine_client, endpoints):
    other = sesame.add_client("client")
    owner_session = oauth_session(machine_client)
    token = owner_session.fetch_token(
        endpoints["token_endpoint"], grant_type="client_credentials"
    )

    response = oauth_session(other).revoke_token(
        endpoints["revocation_endpoint"], token=token["access_token"]
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    answer = owner_session.introspect_token(
        endpoints["introspection_endpoint"], token=token["access_token"]
    )
    assert answer.json()["active"] is True


def test_revoke_refresh_token_ends_family(sesame, oauth_session, endpoints):
    user = sesame.add_user(PASSWORD)
    client = sesame.add_client("password")
    session = oauth_session(client, scope="read")
    token = session.fetch_token(
        endpoints["token_endpoint"], username=user["name"], password=PASSWORD
    )

    response = session.revoke_token(
        endpoints["revocation_endpoint"],
        token=token["refresh_token"],
        token_type_hint="refresh_token",
    )

    assert response.status_code == 200
    answer = session.introspect_token(
        endpoints["introspection_endpoint"], token=token["access_token"]
    )
    assert answer.json() == {"active": False}
    with pytest.raises(OAuthError) as raised:
        session.refresh_token(endpoints["token_endpoint"], refresh_token=token["refresh_token"])
    assert raised.value.error == "invalid_grant"


def test_introspection_requires_authentication(sesame, endpoints):
    response = requests.post(
        endpoints["introspection_endpoint"],
        data={"token": "anything"},
        timeout=HTTP_TIMEOUT_SECONDS,
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")
