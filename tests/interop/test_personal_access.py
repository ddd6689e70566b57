"""Personal access tokens made by `sesame token`, verified with PyJWT through the JWKS."""

import pytest

# Sesame's default lifetime of a personal access token (SESAME_PAT_TTL): one year.
PERSONAL_ACCESS_TTL_SECONDS = 365 * 24 * 60 * 60


@pytest.fixture(scope="module")
def user(sesame):
    return sesame.add_user("pat user password", email="pat@example.test")


@pytest.fixture
def personal_access_client_id(sesame) -> str:
    return sesame.current_personal_access_client_id()


def test_personal_access_token_verifies(sesame, verifier, user, personal_access_client_id):
    created = sesame.cli("token", "--user", user["name"], "--scopes", "read,write")

    claims = verifier.verify(
        created["accessToken"],
        personal_access_client_id,
        expires_in=PERSONAL_ACCESS_TTL_SECONDS,
    )
    assert claims["sub"] == str(user["id"])
    assert claims["scope"] == "read write"
    assert claims["scopes"] == ["read", "write"]
    assert claims["jti"] == created["token"]["id"]
    assert claims["iat"] == created["token"]["created_at"]
    assert claims["exp"] == created["token"]["expires_at"]


def test_personal_access_token_userinfo(
    sesame, verifier, userinfo, user, personal_access_client_id
):
    created = sesame.cli("token", "--user", str(user["id"]), "--scopes", "email")
    verifier.verify(created["accessToken"], personal_access_client_id)

    response = userinfo(created["accessToken"])

    assert response.status_code == 200
    body = response.json()
    assert body["sub"] == str(user["id"])
    assert body["email"] == "pat@example.test"
    assert "name" not in body


def test_personal_access_token_outlives_client(sesame, verifier, userinfo, user):
    old_client_id = sesame.current_personal_access_client_id()
    old = sesame.cli("token", "--user", user["name"], "--scopes", "read")
    verifier.verify(old["accessToken"], old_client_id)

    sesame.cli("client", "revoke", old_client_id)
    new = sesame.cli("token", "--user", user["name"], "--scopes", "read")

    new_client_id = sesame.current_personal_access_client_id()
    assert new_client_id != old_client_id
    verifier.verify(new["accessToken"], new_client_id)
    assert userinfo(old["accessToken"]).status_code == 200
    assert userinfo(new["accessToken"]).status_code == 200
