"""Single sign-on against a real OpenID provider (oidc-provider-mock) on loopback."""

from __future__ import annotations

import asyncio
import itertools
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

import app.oidc
from app.config import GOOGLE_DISCOVERY_URL, ConfigError, load_settings
from handlers.oidc import STATE_COOKIE
from tests.client import Parlour, start_parlour

# The provider's own authlib server code warns (in its thread) about an authlib API it uses.
IDP_WARNINGS = pytest.mark.filterwarnings(
    r"ignore:get_jwt_config\(self, grant\) is deprecated:DeprecationWarning"
)
pytestmark = IDP_WARNINGS

LOGIN = "/api/v1/auth/idp/login"
CALLBACK = "/api/v1/auth/idp/callback"
_subjects = itertools.count()


@pytest.fixture(scope="module")
def idp() -> Iterator[str]:
    """A real OpenID provider on a free loopback port; its base URL (the issuer)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "authlib.jose module is deprecated")
        import oidc_provider_mock

    with oidc_provider_mock.run_server_in_thread(require_nonce=True) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def sso_settings(make_settings: Any, idp: str) -> Any:
    def make(redirect_uri: str | None = None, **overrides: Any) -> Any:
        provider = {
            "discovery_url": f"{idp}/.well-known/openid-configuration",
            "client_id": "parlour-test", "client_secret": "test-client-secret",
        }
        if redirect_uri is not None:
            provider["redirect_uri"] = redirect_uri
        return make_settings(oidc={"idp": provider}, **overrides)
    return make


@pytest.fixture
async def sso(sso_settings: Any) -> AsyncIterator[Parlour]:
    server = await start_parlour(sso_settings())
    yield server
    await server.close()


async def idp_user(idp: str, **claims: Any) -> str:
    """Register a user at the provider; its subject."""
    sub = f"person{next(_subjects)}"
    async with aiohttp.ClientSession() as http, http.put(f"{idp}/users/{sub}", json=claims) as r:
        assert r.status == 204
    return sub


async def idp_user_update(idp: str, sub: str, **claims: Any) -> None:
    """Change a user's claims at the provider."""
    async with aiohttp.ClientSession() as http, http.put(f"{idp}/users/{sub}", json=claims) as r:
        assert r.status == 204


async def authorize(parlour: Parlour, sub: str, next_path: str | None = None,
                    action: str | None = None) -> str:
    """Start a log-in and consent at the provider as `sub`; the callback URL it sends back."""
    params = {"next": next_path} if next_path else {}
    async with parlour.http.get(parlour.url + LOGIN, params=params,
                                allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        location = resp.headers["Location"]
    form = {"action": action} if action else {"sub": sub}
    async with parlour.http.post(location, data=form, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        return resp.headers["Location"]


async def callback(browser: Parlour | aiohttp.ClientSession, url: str,
                   **kwargs: Any) -> tuple[int, Any, str]:
    """Follow the provider's redirect to Parlour; (status, JSON or None, Location)."""
    http = browser.http if isinstance(browser, Parlour) else browser
    async with http.get(url, allow_redirects=False, **kwargs) as resp:
        data = await resp.json() if resp.content_type == "application/json" else None
        location = resp.headers.get("Location", "")
    if resp.status == 302 and location.startswith("/login-success-redirect?"):
        # The hand-over: the landing page trades the one-time token for the cookies.
        landing = parse_qs(urlsplit(location).query)
        base = url.split("/api/v1/")[0]
        async with http.get(f"{base}/api/v1/auth/validate-token",
                            params={"token": landing["token"][0]},
                            headers=kwargs.get("headers")) as resp:
            assert resp.status == 200, await resp.text()
        return 302, data, landing["next"][0]
    return resp.status, data, location


async def test_login_sets_the_session_and_reuses_the_account(sso: Parlour, idp: str) -> None:
    sub = await idp_user(idp, email="Grace@Example.com", email_verified=True, name="Grace H")
    async with sso.http.get(sso.url + LOGIN, allow_redirects=False) as resp:
        assert resp.status == 302
        query = parse_qs(urlsplit(resp.headers["Location"]).query)
        state_cookie = resp.cookies[STATE_COOKIE]
    assert resp.headers["Location"].startswith(f"{idp}/oauth2/authorize?")
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    assert query["redirect_uri"] == [f"{sso.url}{CALLBACK}"]
    assert query["scope"] == ["openid email profile"]
    assert state_cookie["httponly"] and state_cookie["path"] == "/api/v1/auth"

    url = await authorize(sso, sub, next_path="/chat/abc?x=1")
    status, data, location = await callback(sso, url)
    assert status == 302 and location == "/chat/abc?x=1", data
    status, me = await sso.request("GET", "/api/v1/auth/me")  # by cookie
    assert status == 200 and me["user"]["email"] == "grace@example.com"
    assert me["user"]["name"] == "Grace H"
    cookies = {c.key: c for c in sso.http.cookie_jar}
    assert {"access_token", "refresh_token"} <= set(cookies) and STATE_COOKIE not in cookies
    assert cookies["refresh_token"]["path"] == "/api/v1/auth"
    status, _ = await sso.request("POST", "/api/v1/auth/refresh")  # a real refresh token
    assert status == 200

    # A second log-in of the same email is the same account; no `next` lands on /.
    sso.http.cookie_jar.clear()
    status, _, location = await callback(sso, await authorize(sso, sub))
    assert status == 302 and location == "/"
    status, again = await sso.request("GET", "/api/v1/auth/me")
    assert again["user"]["user_id"] == me["user"]["user_id"]


async def test_an_existing_password_account_links_only_with_its_password(
    sso: Parlour, idp: str
) -> None:
    user = await sso.signup("Linus")
    sso.http.cookie_jar.clear()
    sub = await idp_user(idp, email=user.email, email_verified=True)
    status, _, location = await callback(sso, await authorize(sso, sub))
    # Not logged in yet: the account's owner confirms with its password first.
    assert status == 302 and location == "/?link=sso"
    status, _ = await sso.request("GET", "/api/v1/auth/me")
    assert status == 401
    status, pending = await sso.request("GET", "/api/v1/auth/link")
    assert status == 200 and pending == {"email": user.email, "provider": "idp"}
    status, data = await sso.request("POST", "/api/v1/auth/link", json={"password": "wrong one"})
    assert status == 401 and data["error"]["code"] == "unauthorized"
    status, data = await sso.request(
        "POST", "/api/v1/auth/link", json={"password": "correct horse 1"}
    )
    assert status == 200 and data["user"]["user_id"] == user.user_id
    status, me = await sso.request("GET", "/api/v1/auth/me")
    assert me["user"]["user_id"] == user.user_id and me["user"]["name"] == "Linus"
    status, _ = await sso.request("GET", "/api/v1/auth/link")  # the link cookie is spent
    assert status == 401

    # Linked: the next sign-on logs straight in, even after the email changed there.
    sso.http.cookie_jar.clear()
    await idp_user_update(idp, sub, email="linus.new@example.com", email_verified=True)
    status, _, location = await callback(sso, await authorize(sso, sub))
    assert status == 302 and location == "/"
    status, me = await sso.request("GET", "/api/v1/auth/me")
    assert me["user"]["user_id"] == user.user_id


async def test_an_unverified_email_never_takes_over_an_account(sso: Parlour, idp: str) -> None:
    victim = await sso.signup("Victim")
    sso.http.cookie_jar.clear()
    for claims, expected in (({}, 409), ({"email_verified": False}, 403)):
        sub = await idp_user(idp, email=victim.email, **claims)  # omitted, then falsified
        status, data, location = await callback(sso, await authorize(sso, sub))
        assert status == expected and data["error"]["code"] in ("conflict", "forbidden"), data
        assert location == ""
        status, _ = await sso.request("GET", "/api/v1/auth/me")
        assert status == 401
        status, _ = await sso.request("GET", "/api/v1/auth/link")
        assert status == 401
    assert await sso.services.mongo.users.count_documents({}) == 1
    assert await sso.services.mongo.collection("identities").count_documents({}) == 0


async def test_linking_without_the_password_when_configured(
    sso_settings: Any, idp: str
) -> None:
    server = await start_parlour(sso_settings(auth__sso_link_requires_password=False))
    try:
        user = await server.signup("Lin")
        server.http.cookie_jar.clear()
        sub = await idp_user(idp, email=user.email, email_verified=True)
        status, _, location = await callback(server, await authorize(server, sub))
        assert status == 302 and location == "/"
        status, me = await server.request("GET", "/api/v1/auth/me")
        assert me["user"]["user_id"] == user.user_id
        # Still never on an email the provider does not vouch for.
        other = await server.signup("Other")
        server.http.cookie_jar.clear()
        sub = await idp_user(idp, email=other.email)
        status, data, _ = await callback(server, await authorize(server, sub))
        assert status == 409 and data["error"]["code"] == "conflict"
    finally:
        await server.close()


async def test_name_falls_back_and_a_new_account_has_no_password(
    sso: Parlour, idp: str
) -> None:
    sub = await idp_user(idp, email="kay@example.com")  # no name, no email_verified claim
    status, _, _ = await callback(sso, await authorize(sso, sub))
    assert status == 302
    status, me = await sso.request("GET", "/api/v1/auth/me")
    assert me["user"]["name"] == "kay"
    status, data = await sso.request(
        "POST", "/api/v1/auth/login", json={"email": "kay@example.com", "password": "anything1"}
    )
    assert status == 401 and data["error"]["code"] == "unauthorized"


async def test_whitelist_and_unverified_email_are_refused(sso_settings: Any, idp: str) -> None:
    server = await start_parlour(sso_settings(auth__allowed_domains=["ok.org"]))
    try:
        outsider = await idp_user(idp, email="eve@elsewhere.org", email_verified=True)
        status, data, _ = await callback(server, await authorize(server, outsider))
        assert status == 403 and data["error"]["code"] == "forbidden"
        unverified = await idp_user(idp, email="mallory@ok.org", email_verified=False)
        status, data, _ = await callback(server, await authorize(server, unverified))
        assert status == 403 and "not verified" in data["error"]["message"]
        users = server.services.mongo.users
        assert await users.count_documents({}) == 0
        member = await idp_user(idp, email="ann@ok.org", email_verified=True)
        status, _, _ = await callback(server, await authorize(server, member))
        assert status == 302
    finally:
        await server.close()


async def test_a_configured_redirect_uri_is_used(sso_settings: Any) -> None:
    configured = "https://chat.example.com/api/v1/auth/idp/callback"
    server = await start_parlour(sso_settings(redirect_uri=configured))
    try:
        async with server.http.get(server.url + LOGIN, allow_redirects=False) as resp:
            query = parse_qs(urlsplit(resp.headers["Location"]).query)
        assert query["redirect_uri"] == [configured]
    finally:
        await server.close()


async def test_state_must_match_this_browser(sso: Parlour, idp: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    sub = await idp_user(idp, email="sam@example.com", email_verified=True)
    url = await authorize(sso, sub)
    bound = next(c.value for c in sso.http.cookie_jar if c.key == STATE_COOKIE)
    query = parse_qs(urlsplit(url).query)
    code, state = query["code"][0], query["state"][0]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as browser:

        async def attempt(params: dict[str, str], cookie: str | None) -> tuple[int, Any]:
            headers = {"Cookie": f"{STATE_COOKIE}={cookie}"} if cookie is not None else {}
            status, data, _ = await callback(browser, f"{sso.url}{CALLBACK}", params=params,
                                             headers=headers)
            return status, data

        for params, cookie, fragment in (
            ({"code": code, "state": state}, None, "state cookie missing"),
            ({"code": code, "state": state + "x"}, bound, "state does not match"),
            ({"code": code}, bound, "state does not match"),
            ({"code": code, "state": state}, bound[:-3] + "AAA", "invalid log-in state"),
        ):
            status, data = await attempt(params, cookie)
            assert status == 401 and data["error"]["code"] == "unauthorized", data
            assert fragment in data["error"]["message"]

        # The right pair works once; replaying the code is refused by the provider.
        status, _ = await attempt({"code": code, "state": state}, bound)
        assert status == 302
        status, data = await attempt({"code": code, "state": state}, bound)
        assert status == 401 and "refused the code" in data["error"]["message"]

        # A state older than its lifetime is refused.
        monkeypatch.setattr(app.oidc, "STATE_TTL_SECONDS", 1)
        async with sso.http.get(sso.url + LOGIN, allow_redirects=False) as resp:
            short_lived = resp.cookies[STATE_COOKIE].value
            state = parse_qs(urlsplit(resp.headers["Location"]).query)["state"][0]
        await asyncio.sleep(2.1)
        status, data = await attempt({"code": "whatever", "state": state}, short_lived)
        assert status == 401 and "expired" in data["error"]["message"]


async def test_id_token_nonce_and_issuer_are_checked(sso: Parlour, idp: str) -> None:
    sub = await idp_user(idp, email="nina@example.com", email_verified=True)
    # A code issued for one log-in (its nonce) presented with another log-in's state.
    code = parse_qs(urlsplit(await authorize(sso, sub)).query)["code"][0]
    other = parse_qs(urlsplit(await authorize(sso, sub)).query)
    status, data, _ = await callback(sso, f"{sso.url}{CALLBACK}",
                                     params={"code": code, "state": other["state"][0]})
    assert status == 401 and "ID token is not valid" in data["error"]["message"], data
    assert "nonce" in data["error"]["message"], data
    # RFC 9207: a callback naming another issuer is refused before the code is spent.
    url = await authorize(sso, sub)
    status, data, _ = await callback(sso, url + "&iss=https%3A%2F%2Fevil.example")
    assert status == 401 and "another issuer" in data["error"]["message"]
    status, _ = await sso.request("GET", "/api/v1/auth/me")
    assert status == 401


async def test_provider_refusal_and_bad_requests(sso: Parlour, idp: str) -> None:
    url = await authorize(sso, "", action="deny")
    status, data, _ = await callback(sso, url)
    assert status == 401 and "access_denied" in data["error"]["message"]

    for next_path in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "chat"):
        status, data = await sso.request("GET", LOGIN, params={"next": next_path},
                                         allow_redirects=False)
        assert status == 422 and data["error"]["code"] == "invalid_payload", next_path

    for path in ("/api/v1/auth/nope/login", "/api/v1/auth/nope/callback?code=x&state=y"):
        status, data = await sso.request("GET", path, allow_redirects=False)
        assert status == 404 and data["error"]["code"] == "not_found"


async def test_configured_providers_are_listed_for_the_login_page(
    sso: Parlour, parlour: Parlour
) -> None:
    status, data = await sso.request("GET", "/api/v1/auth/providers")
    assert status == 200 and len(data["providers"]) >= 1
    status, data = await parlour.request("GET", "/api/v1/auth/providers")
    assert status == 200 and data == {"providers": []}


async def test_validate_token(parlour: Parlour) -> None:
    user = await parlour.signup()
    status, data = await parlour.request("GET", "/api/v1/auth/validate-token", user=user)
    assert status == 200 and data["valid"] is True
    assert data["user"]["user_id"] == user.user_id
    status, data = await parlour.request("GET", "/api/v1/auth/validate-token")  # cookie
    assert status == 200 and data["user"]["email"] == user.email
    parlour.http.cookie_jar.clear()
    for headers in ({}, {"Authorization": "Bearer garbage"}):
        status, data = await parlour.request("GET", "/api/v1/auth/validate-token",
                                             headers=headers)
        assert status == 401 and data["error"]["code"] == "unauthorized"
    # No provider configured: every provider is unknown.
    status, data = await parlour.request("GET", "/api/v1/auth/google/login",
                                         allow_redirects=False)
    assert status == 404


def test_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[oidc.google]\nclient_id = "id"\nclient_secret = "in the file"\n')
    with pytest.raises(ConfigError, match="PARLOUR_OIDC__GOOGLE__CLIENT_SECRET"):
        load_settings(config)
    config.write_text('[oidc.google]\nclient_id = "id"\n')
    monkeypatch.setenv("PARLOUR_OIDC__GOOGLE__CLIENT_SECRET", "from-the-environment")
    google = load_settings(config).oidc["google"]
    assert google.discovery_url == GOOGLE_DISCOVERY_URL
    assert google.client_secret is not None
    assert google.client_secret.get_secret_value() == "from-the-environment"
    monkeypatch.delenv("PARLOUR_OIDC__GOOGLE__CLIENT_SECRET")
    with pytest.raises(ConfigError, match=r"corp\.discovery_url is required"):
        load_settings(None, oidc={"corp": {"client_id": "id"}})
    with pytest.raises(ConfigError, match="oidc"):
        load_settings(None, oidc={"Bad__Name": {"client_id": "id", "discovery_url": "x"}})
