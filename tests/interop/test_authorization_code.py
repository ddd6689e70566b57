"""The authorization code grant with PKCE, driven by authlib's OAuth2Session as the client.

The user's part runs without a browser: a ScriptedUser signs in and submits the consent form
with its hidden fields, and the test reads the redirect to the client's redirect URI from its
Location. test_browser.py runs the same flow in Chromium.
"""

import html
import re

import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from conftest import HTTP_TIMEOUT_SECONDS, find_form, query_of

PASSWORD = "code flow password"


# The tests of this module share one user. Each test creates its own clients, because
# consent is remembered per user, client and redirect URI.
@pytest.fixture(scope="module")
def user(sesame):
    return sesame.add_user(PASSWORD, email="code@example.test")


@pytest.fixture
def browser(scripted_user, user):
    return scripted_user(user, PASSWORD)


def code_session(oauth_session, client, redirect_uri, scope, **options):
    """Return an OAuth2Session that sends an S256 code challenge with its requests."""
    return oauth_session(
        client,
        scope=scope,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        **options,
    )


def authorization_url(sesame, session, **params) -> tuple[str, str, str]:
    """Return an authorization URL made by authlib with its state and PKCE verifier."""
    code_verifier = generate_token(48)
    url, state = session.create_authorization_url(
        sesame.authorization_endpoint, code_verifier=code_verifier, **params
    )
    return url, state, code_verifier


def approve(browser, url) -> str:
    """Sign in if needed, press Allow on the consent page, and return the redirect."""
    consent = browser.authorize(url)
    assert consent.status_code == 200, f"expected the consent page, got {consent.status_code}"
    return browser.decide(consent, "approve")


def assert_code_response(sesame, location, redirect_uri, state) -> dict:
    """Check the parts of a successful authorization response and return its parameters."""
    assert location.startswith(f"{redirect_uri}?"), location
    response = query_of(location)
    assert response["code"]
    assert response["state"] == state
    assert response["iss"] == sesame.issuer
    assert "error" not in response
    return response


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_confidential_client_code_and_refresh(
    sesame, verifier, userinfo, oauth_session, redirect_receiver, browser, user, auth_method
):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read", "profile"])
    session = code_session(
        oauth_session,
        client,
        redirect_receiver.url,
        "read profile",
        token_endpoint_auth_method=auth_method,
    )
    url, state, code_verifier = authorization_url(sesame, session)

    consent = browser.authorize(url)
    assert consent.status_code == 200
    assert client["name"] in consent.text
    location = browser.decide(consent, "approve")
    assert_code_response(sesame, location, redirect_receiver.url, state)

    token = session.fetch_token(
        sesame.token_endpoint,
        authorization_response=location,
        state=state,
        code_verifier=code_verifier,
    )
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "read profile"
    assert token["refresh_token"]
    claims = verifier.verify(token["access_token"], client["id"], token["expires_in"])
    assert claims["sub"] == str(user["id"])
    assert claims["scopes"] == ["read", "profile"]
    profile = userinfo(token["access_token"])
    assert profile.status_code == 200
    assert profile.json()["preferred_username"] == user["name"]

    refreshed = session.refresh_token(sesame.token_endpoint, refresh_token=token["refresh_token"])
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert refreshed["scope"] == "read profile"
    refreshed_claims = verifier.verify(
        refreshed["access_token"], client["id"], refreshed["expires_in"]
    )
    assert refreshed_claims["sub"] == str(user["id"])


def test_public_client_code_and_refresh(
    sesame, verifier, oauth_session, redirect_receiver, browser, user
):
    client = sesame.add_web_client(redirect_receiver.url, public=True, scopes=["read"])
    assert client["secret"] is None
    session = code_session(
        oauth_session, client, redirect_receiver.url, "read", token_endpoint_auth_method="none"
    )
    url, state, code_verifier = authorization_url(sesame, session)

    location = approve(browser, url)
    assert_code_response(sesame, location, redirect_receiver.url, state)

    token = session.fetch_token(
        sesame.token_endpoint,
        authorization_response=location,
        state=state,
        code_verifier=code_verifier,
    )
    assert token["scope"] == "read"
    claims = verifier.verify(token["access_token"], client["id"], token["expires_in"])
    assert claims["sub"] == str(user["id"])

    refreshed = session.refresh_token(sesame.token_endpoint, refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    refreshed_claims = verifier.verify(refreshed["access_token"], client["id"])
    assert refreshed_claims["sub"] == str(user["id"])


def test_deny_returns_access_denied(sesame, oauth_session, redirect_receiver, browser):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read"])
    session = code_session(oauth_session, client, redirect_receiver.url, "read")
    url, state, _ = authorization_url(sesame, session)

    consent = browser.authorize(url)
    location = browser.decide(consent, "deny")

    assert location.startswith(f"{redirect_receiver.url}?"), location
    response = query_of(location)
    assert response["error"] == "access_denied"
    assert response["state"] == state
    assert response["iss"] == sesame.issuer
    assert "code" not in response


def test_code_replay_revokes_tokens(
    sesame, oauth_session, redirect_receiver, browser, userinfo
):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read"])
    session = code_session(oauth_session, client, redirect_receiver.url, "read")
    url, state, code_verifier = authorization_url(sesame, session)
    location = approve(browser, url)
    redeem = {"authorization_response": location, "state": state, "code_verifier": code_verifier}
    token = session.fetch_token(sesame.token_endpoint, **redeem)
    assert userinfo(token["access_token"]).status_code == 200

    with pytest.raises(OAuthError) as raised:
        session.fetch_token(sesame.token_endpoint, **redeem)

    assert raised.value.error == "invalid_grant"
    assert userinfo(token["access_token"]).status_code == 401
    with pytest.raises(OAuthError) as refresh_raised:
        session.refresh_token(sesame.token_endpoint, refresh_token=token["refresh_token"])
    assert refresh_raised.value.error == "invalid_grant"


def test_wrong_code_verifier_spends_code(sesame, oauth_session, redirect_receiver, browser):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read"])
    session = code_session(oauth_session, client, redirect_receiver.url, "read")
    url, state, code_verifier = authorization_url(sesame, session)
    location = approve(browser, url)

    with pytest.raises(OAuthError) as raised:
        session.fetch_token(
            sesame.token_endpoint,
            authorization_response=location,
            state=state,
            code_verifier=generate_token(48),
        )
    assert raised.value.error == "invalid_grant"

    # A code gets one attempt: the right verifier no longer helps.
    with pytest.raises(OAuthError) as retried:
        session.fetch_token(
            sesame.token_endpoint,
            authorization_response=location,
            state=state,
            code_verifier=code_verifier,
        )
    assert retried.value.error == "invalid_grant"


def test_missing_code_verifier_rejected(sesame, oauth_session, redirect_receiver, browser):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read"])
    session = code_session(oauth_session, client, redirect_receiver.url, "read")
    url, state, _ = authorization_url(sesame, session)
    location = approve(browser, url)

    with pytest.raises(OAuthError) as raised:
        session.fetch_token(sesame.token_endpoint, authorization_response=location, state=state)

    assert raised.value.error == "invalid_grant"


def test_token_redirect_uri_must_match(sesame, oauth_session, redirect_receiver, browser):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read"])
    session = code_session(oauth_session, client, redirect_receiver.url, "read")
    url, state, code_verifier = authorization_url(sesame, session)
    location = approve(browser, url)

    with pytest.raises(OAuthError) as raised:
        session.fetch_token(
            sesame.token_endpoint,
            authorization_response=location,
            state=state,
            code_verifier=code_verifier,
            redirect_uri=f"{redirect_receiver.url}/other",
        )

    assert raised.value.error == "invalid_grant"


def test_code_of_other_client_rejected(sesame, oauth_session, redirect_receiver, browser):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read"])
    other = sesame.add_web_client(redirect_receiver.url, scopes=["read"])
    session = code_session(oauth_session, client, redirect_receiver.url, "read")
    other_session = code_session(oauth_session, other, redirect_receiver.url, "read")
    url, state, code_verifier = authorization_url(sesame, session)
    location = approve(browser, url)

    with pytest.raises(OAuthError) as raised:
        other_session.fetch_token(
            sesame.token_endpoint,
            authorization_response=location,
            state=state,
            code_verifier=code_verifier,
        )

    assert raised.value.error == "invalid_grant"


def test_public_client_requires_pkce(sesame, oauth_session, redirect_receiver, browser):
    client = sesame.add_web_client(redirect_receiver.url, public=True, scopes=["read"])
    # Without code_challenge_method authlib sends no code challenge.
    session = oauth_session(
        client, scope="read", redirect_uri=redirect_receiver.url, token_endpoint_auth_method="none"
    )
    url, state = session.create_authorization_url(sesame.authorization_endpoint)

    response = browser.get(url)

    assert response.status_code == 303
    redirect = query_of(response.headers["Location"])
    assert redirect["error"] == "invalid_request"
    assert redirect["state"] == state
    assert redirect["iss"] == sesame.issuer


def test_consent_remembered_for_confidential_client(
    sesame, oauth_session, redirect_receiver, browser
):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read", "write"])
    session = code_session(oauth_session, client, redirect_receiver.url, "read")
    first_url, _, _ = authorization_url(sesame, session)
    approve(browser, first_url)

    again_url, again_state, _ = authorization_url(sesame, session)
    again = browser.get(again_url)
    assert again.status_code == 303
    assert_code_response(sesame, again.headers["Location"], redirect_receiver.url, again_state)

    wider_url, _, _ = authorization_url(sesame, session, scope="read write")
    assert browser.get(wider_url).status_code == 200

    forced_url, _, _ = authorization_url(sesame, session, prompt="consent")
    assert browser.get(forced_url).status_code == 200


def test_public_client_always_asks_consent(sesame, oauth_session, redirect_receiver, browser):
    client = sesame.add_web_client(redirect_receiver.url, public=True, scopes=["read"])
    session = code_session(
        oauth_session, client, redirect_receiver.url, "read", token_endpoint_auth_method="none"
    )
    first_url, _, _ = authorization_url(sesame, session)
    approve(browser, first_url)

    again_url, _, _ = authorization_url(sesame, session)
    again = browser.get(again_url)

    assert again.status_code == 200
    assert "id=\"approve\"" in again.text


def test_first_party_client_skips_consent(
    sesame, verifier, oauth_session, redirect_receiver, browser, user
):
    client = sesame.add_web_client(redirect_receiver.url, first_party=True, scopes=["read"])
    session = code_session(oauth_session, client, redirect_receiver.url, "read")
    url, state, code_verifier = authorization_url(sesame, session)

    response = browser.authorize(url)

    assert response.status_code == 303
    location = response.headers["Location"]
    assert_code_response(sesame, location, redirect_receiver.url, state)
    token = session.fetch_token(
        sesame.token_endpoint,
        authorization_response=location,
        state=state,
        code_verifier=code_verifier,
    )
    claims = verifier.verify(token["access_token"], client["id"])
    assert claims["sub"] == str(user["id"])


def test_prompt_none_signed_out(sesame, oauth_session, redirect_receiver, browser):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read"])
    session = code_session(oauth_session, client, redirect_receiver.url, "read")
    url, state, _ = authorization_url(sesame, session, prompt="none")

    response = browser.get(url)

    assert response.status_code == 303
    redirect = query_of(response.headers["Location"])
    assert redirect["error"] == "login_required"
    assert redirect["state"] == state
    assert redirect["iss"] == sesame.issuer


def test_prompt_none_without_consent(sesame, oauth_session, redirect_receiver, browser):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read"])
    session = code_session(oauth_session, client, redirect_receiver.url, "read")
    sign_in_url, _, _ = authorization_url(sesame, session)
    assert browser.authorize(sign_in_url).status_code == 200
    url, state, _ = authorization_url(sesame, session, prompt="none")

    response = browser.get(url)

    assert response.status_code == 303
    redirect = query_of(response.headers["Location"])
    assert redirect["error"] == "consent_required"
    assert redirect["state"] == state


def test_account_scope_never_on_consent_page(sesame, oauth_session, redirect_receiver, browser):
    client = sesame.add_web_client(redirect_receiver.url)
    session = code_session(oauth_session, client, redirect_receiver.url, "read sesame:account")
    url, state, _ = authorization_url(sesame, session)

    response = browser.authorize(url)

    assert response.status_code == 303
    redirect = query_of(response.headers["Location"])
    assert redirect["error"] == "invalid_scope"
    assert redirect["state"] == state


def test_unregistered_redirect_uri_shows_page(sesame, oauth_session, redirect_receiver, browser):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read"])
    unregistered = redirect_receiver.url.replace("/callback", "/not-registered")
    session = code_session(oauth_session, client, unregistered, "read")
    url, _, _ = authorization_url(sesame, session)

    response = browser.get(url)

    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "not registered" in response.text


def test_loopback_redirect_port_may_differ(
    sesame, verifier, oauth_session, redirect_receiver, browser
):
    # RFC 8252 §7.3: a native app listens on whatever loopback port it got, so the port of a
    # registered http://127.0.0.1 redirect URI is not compared. Nothing listens on this port:
    # the test reads the redirect without following it.
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read"])
    port = int(redirect_receiver.url.split(":")[2].split("/")[0])
    other_port_uri = redirect_receiver.url.replace(f":{port}/", f":{port + 1}/")
    session = code_session(oauth_session, client, other_port_uri, "read")
    url, state, code_verifier = authorization_url(sesame, session)

    location = approve(browser, url)

    assert_code_response(sesame, location, other_port_uri, state)
    token = session.fetch_token(
        sesame.token_endpoint,
        authorization_response=location,
        state=state,
        code_verifier=code_verifier,
    )
    verifier.verify(token["access_token"], client["id"])


def test_consent_form_needs_csrf_token(sesame, oauth_session, redirect_receiver, browser):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read"])
    session = code_session(oauth_session, client, redirect_receiver.url, "read")
    url, _, _ = authorization_url(sesame, session)
    consent = browser.authorize(url)
    form = find_form(consent.text, button_id="approve")
    fields = {name: value for name, value in form.fields if name != "_csrf"}

    response = browser.http.post(
        sesame.authorization_endpoint,
        data={**fields, "decision": "approve"},
        allow_redirects=False,
        timeout=HTTP_TIMEOUT_SECONDS,
    )

    assert response.status_code == 403
    assert "Location" not in response.headers


def test_consent_decision_used_once(sesame, oauth_session, redirect_receiver, browser):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read"])
    session = code_session(oauth_session, client, redirect_receiver.url, "read")
    url, _, _ = authorization_url(sesame, session)
    consent = browser.authorize(url)
    browser.decide(consent, "approve")

    repeated = browser.submit(consent, button_id="approve")

    assert repeated.status_code == 400
    assert "Location" not in repeated.headers


def test_state_returned_unchanged(sesame, oauth_session, redirect_receiver, browser):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read"])
    session = code_session(oauth_session, client, redirect_receiver.url, "read")
    state = "a b&c=d/é?#+%20"
    url, _, _ = authorization_url(sesame, session, state=state)

    location = browser.decide(browser.authorize(url), "deny")

    assert query_of(location)["state"] == state


def test_redirect_uri_query_kept(sesame, verifier, oauth_session, redirect_receiver, browser):
    redirect_uri = f"{redirect_receiver.url}?tenant=blue"
    client = sesame.add_web_client(redirect_uri, scopes=["read"])
    session = code_session(oauth_session, client, redirect_uri, "read")
    url, state, code_verifier = authorization_url(sesame, session)

    location = approve(browser, url)

    assert location.startswith(f"{redirect_uri}&"), location
    response = query_of(location)
    assert response["tenant"] == "blue"
    assert response["state"] == state
    assert response["iss"] == sesame.issuer
    token = session.fetch_token(
        sesame.token_endpoint,
        authorization_response=location,
        state=state,
        code_verifier=code_verifier,
    )
    verifier.verify(token["access_token"], client["id"])


def test_consent_page_escapes_client_name(sesame, oauth_session, redirect_receiver, browser):
    name = "Evil <script>alert(1)</script> & Co"
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read"], name=name)
    session = code_session(oauth_session, client, redirect_receiver.url, "read")
    url, _, _ = authorization_url(sesame, session)

    consent = browser.authorize(url)

    assert consent.status_code == 200
    assert "<script>" not in consent.text
    displayed_name = re.search(r"<p><strong>(.*?)</strong> asks", consent.text)
    assert displayed_name is not None, consent.text
    assert "<" not in displayed_name.group(1)
    assert html.unescape(displayed_name.group(1)) == name


def test_sign_in_replaces_session_cookie(sesame, browser):
    login = browser.get(f"{sesame.issuer}/login")
    cookie_header = login.headers["Set-Cookie"]
    before = browser.http.cookies.get("sesame_session")

    browser.sign_in(login)

    after = browser.http.cookies.get("sesame_session")
    assert before
    assert after
    assert after != before
    assert "HttpOnly" in cookie_header
    assert "SameSite=Lax" in cookie_header
    assert "Path=/" in cookie_header


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"scope": "no-such-scope"}, "invalid_scope"),
        ({"scope": "write"}, "invalid_scope"),
        ({"prompt": "select_account"}, "invalid_request"),
    ],
)
def test_invalid_request_redirects_error(
    sesame, oauth_session, redirect_receiver, browser, params, error
):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read"])
    # The challenge is set by hand, because authlib would replace a code_challenge_method
    # other than its own.
    session = oauth_session(client, scope="read", redirect_uri=redirect_receiver.url)
    challenge = {
        "code_challenge": create_s256_code_challenge(generate_token(48)),
        "code_challenge_method": "S256",
    }
    url, state = session.create_authorization_url(
        sesame.authorization_endpoint, **{**challenge, **params}
    )

    response = browser.get(url)

    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith(f"{redirect_receiver.url}?"), location
    redirect = query_of(location)
    assert redirect["error"] == error
    assert redirect["state"] == state
    assert redirect["iss"] == sesame.issuer
    assert "code" not in redirect


def test_sign_in_form_needs_csrf_token(sesame, browser):
    login = browser.get(f"{sesame.issuer}/login")
    form = find_form(login.text, action="/login")
    fields = {name: value for name, value in form.fields if name != "_csrf"}
    fields.update(username=browser.username, password=browser.password)

    response = browser.http.post(
        f"{sesame.issuer}/login", data=fields, allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS
    )

    assert response.status_code == 403
    assert "Location" not in response.headers
