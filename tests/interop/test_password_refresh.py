"""The password grant and refresh token rotation, driven by authlib's OAuth2Session."""

import pytest
from authlib.integrations.base_client import OAuthError

PASSWORD = "correct horse battery staple"


# The tests of this module share one user and one password client, because creating each
# takes seconds in a debug build. Every test starts its own token family with a password
# grant, so revoking a family in one test leaves the others' tokens alone.
@pytest.fixture(scope="module")
def user(sesame):
    return sesame.add_user(PASSWORD, email="interop@example.test")


@pytest.fixture(scope="module")
def password_client(sesame):
    return sesame.add_client("password")


@pytest.fixture
def password_session(oauth_session, password_client):
    """Return an OAuth2Session of the password client, authenticating with HTTP Basic."""
    return oauth_session(password_client, scope="read profile email")


def fetch_password_token(sesame, session, user, password=PASSWORD):
    return session.fetch_token(
        sesame.token_endpoint, username=user["name"], password=password
    )


def test_password_grant_token(sesame, verifier, password_session, user):
    token = fetch_password_token(sesame, password_session, user)

    assert token["token_type"] == "Bearer"
    assert token["scope"] == "read profile email"
    assert token["refresh_token"]
    claims = verifier.verify(
        token["access_token"], password_session.client_id, token["expires_in"]
    )
    assert claims["sub"] == str(user["id"])
    assert claims["scopes"] == ["read", "profile", "email"]


def test_password_grant_userinfo(sesame, password_session, user):
    fetch_password_token(sesame, password_session, user)

    response = password_session.get(sesame.userinfo_endpoint)

    assert response.status_code == 200
    body = response.json()
    assert body["sub"] == str(user["id"])
    assert body["preferred_username"] == user["name"]
    assert body["email"] == "interop@example.test"


def test_password_grant_wrong_password(sesame, password_session, user):
    with pytest.raises(OAuthError) as raised:
        fetch_password_token(sesame, password_session, user, password="wrong password")

    assert raised.value.error == "invalid_grant"


def test_password_grant_unknown_user(sesame, password_session):
    unknown = {"name": "nobody_with_this_name"}

    with pytest.raises(OAuthError) as raised:
        fetch_password_token(sesame, password_session, unknown)

    assert raised.value.error == "invalid_grant"


def test_refresh_rotates_tokens(sesame, verifier, password_session, user):
    first = fetch_password_token(sesame, password_session, user)
    first_access = first["access_token"]
    first_refresh = first["refresh_token"]

    second = password_session.refresh_token(
        sesame.token_endpoint, refresh_token=first_refresh
    )

    assert second["access_token"] != first_access
    assert second["refresh_token"] != first_refresh
    assert second["scope"] == "read profile email"
    claims = verifier.verify(
        second["access_token"], password_session.client_id, second["expires_in"]
    )
    assert claims["sub"] == str(user["id"])


def test_refresh_revokes_previous_access_token(sesame, password_session, user, userinfo):
    first = fetch_password_token(sesame, password_session, user)
    second = password_session.refresh_token(
        sesame.token_endpoint, refresh_token=first["refresh_token"]
    )

    assert userinfo(first["access_token"]).status_code == 401
    assert userinfo(second["access_token"]).status_code == 200


def test_refresh_narrows_scope(sesame, verifier, password_session, user):
    first = fetch_password_token(sesame, password_session, user)

    second = password_session.refresh_token(
        sesame.token_endpoint, refresh_token=first["refresh_token"], scope="read"
    )

    assert second["scope"] == "read"
    claims = verifier.verify(second["access_token"], password_session.client_id)
    assert claims["scopes"] == ["read"]


def test_refresh_scope_beyond_grant(sesame, password_session, user):
    first = fetch_password_token(sesame, password_session, user)

    with pytest.raises(OAuthError) as raised:
        password_session.refresh_token(
            sesame.token_endpoint, refresh_token=first["refresh_token"], scope="read write"
        )

    assert raised.value.error == "invalid_scope"


def test_old_refresh_token_refused(sesame, password_session, user):
    first = fetch_password_token(sesame, password_session, user)
    password_session.refresh_token(sesame.token_endpoint, refresh_token=first["refresh_token"])

    with pytest.raises(OAuthError) as raised:
        password_session.refresh_token(
            sesame.token_endpoint, refresh_token=first["refresh_token"]
        )

    assert raised.value.error == "invalid_grant"


def test_refresh_reuse_revokes_family(sesame, password_session, user, userinfo):
    first = fetch_password_token(sesame, password_session, user)
    second = password_session.refresh_token(
        sesame.token_endpoint, refresh_token=first["refresh_token"]
    )
    assert userinfo(second["access_token"]).status_code == 200

    with pytest.raises(OAuthError):
        password_session.refresh_token(
            sesame.token_endpoint, refresh_token=first["refresh_token"]
        )

    response = userinfo(second["access_token"])
    assert response.status_code == 401
    assert "invalid_token" in response.headers.get("WWW-Authenticate", "")
    with pytest.raises(OAuthError) as raised:
        password_session.refresh_token(
            sesame.token_endpoint, refresh_token=second["refresh_token"]
        )
    assert raised.value.error == "invalid_grant"


def test_refresh_token_of_other_client(sesame, oauth_session, password_session, user):
    first = fetch_password_token(sesame, password_session, user)
    other_session = oauth_session(sesame.add_client("password"))

    with pytest.raises(OAuthError) as raised:
        other_session.refresh_token(sesame.token_endpoint, refresh_token=first["refresh_token"])

    assert raised.value.error == "invalid_grant"
