"""The JWKS document, read with PyJWT's JWK types."""

import jwt
import requests

HTTP_TIMEOUT_SECONDS = 10

# Members that only a private RSA key has (RFC 7518 §6.3.2).
PRIVATE_KEY_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth"}


def fetch_jwks(url: str) -> requests.Response:
    return requests.get(url, timeout=HTTP_TIMEOUT_SECONDS)


def test_jwks_public_rsa_keys(sesame):
    response = fetch_jwks(sesame.jwks_uri)

    assert response.status_code == 200
    assert "max-age=" in response.headers.get("Cache-Control", "")
    keys = response.json()["keys"]
    assert keys, "the JWKS has no keys"
    for key in keys:
        assert key["kty"] == "RSA"
        assert key["alg"] == "RS256"
        assert key["use"] == "sig"
        assert key["kid"]
        assert PRIVATE_KEY_MEMBERS.isdisjoint(key), f"key {key['kid']} has private members"


def test_jwks_parsed_by_pyjwt(sesame):
    document = fetch_jwks(sesame.jwks_uri).json()

    key_set = jwt.PyJWKSet.from_dict(document)

    assert [key.key_id for key in key_set.keys] == [key["kid"] for key in document["keys"]]


def test_jwks_well_known_alias(sesame):
    primary = fetch_jwks(sesame.jwks_uri)
    alias = fetch_jwks(f"{sesame.issuer}/.well-known/jwks.json")

    assert alias.status_code == 200
    assert alias.json() == primary.json()
