"""The API reference (contract §5, issue 8 item 10): /docs with every asset from Herald
itself under its CSP, and /openapi.json describing the JSON API only."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx

NONCE = re.compile(r"script-src 'nonce-([^']+)'")


class References(HTMLParser):
    """Every URL a page makes the browser load (src, href, stylesheet links)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self.scripts.append(found)
        for name in ("src", "href", "data-openapi-url"):
            value = found.get(name)
            if value:
                self.urls.append(value)


async def test_docs_references_only_herald_and_every_asset_answers(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    refs = References()
    refs.feed(page.text)
    assert refs.urls, page.text
    for url in refs.urls:
        if url.startswith("data:"):
            continue  # inline (the empty favicon): nothing is fetched
        parts = urlsplit(url)
        assert not parts.scheme, url
        assert not parts.netloc, url
        assert url.startswith("/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0, url
    # Swagger UI itself, its stylesheet and Herald's initializer, all from /static.
    assert "/static/swagger-ui/swagger-ui-bundle.js" in refs.urls
    assert "/static/swagger-ui/swagger-ui.css" in refs.urls
    assert "/static/docs.js" in refs.urls
    assert "/openapi.json" in refs.urls


async def test_docs_runs_under_the_csp_without_inline_script(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    csp = page.headers["content-security-policy"]
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    nonce = NONCE.search(csp)
    assert nonce, csp
    refs = References()
    refs.feed(page.text)
    assert len(refs.scripts) == 2
    for script in refs.scripts:
        assert script.get("src"), "no inline script"
        assert script.get("nonce") == nonce.group(1)
    assert "cdn" not in page.text.lower()


async def test_the_initializer_asks_no_third_party_validator(client: httpx.AsyncClient) -> None:
    script = (await client.get("/static/docs.js")).text
    assert "validatorUrl: null" in script
    assert not re.search(r"https?://", script)


async def test_openapi_describes_the_json_api_only(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    paths = set(schema["paths"])
    assert paths
    assert all(path.startswith("/api/v1/") for path in paths), sorted(paths)
    assert {"/api/v1/me", "/api/v1/auth/token", "/api/v1/api-keys"} <= paths
    for page in ("/", "/login", "/subscriptions", "/admin/dashboard", "/health_check", "/docs"):
        assert page not in paths


async def test_openapi_components_are_those_the_api_uses_and_bearer_auth_is_declared(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    text = str(schema["paths"])
    for name in schema["components"].get("schemas", {}):
        referenced = f"#/components/schemas/{name}" in text or any(
            f"#/components/schemas/{name}" in str(other)
            for other in schema["components"]["schemas"].values()
        )
        assert referenced, name
    for ref in re.findall(r"#/components/schemas/([\w.-]+)", str(schema)):
        assert ref in schema["components"]["schemas"], ref
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert schema["paths"]["/api/v1/me"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"]["/api/v1/auth/token"]["post"]


async def test_the_token_endpoint_documents_its_form(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    body = schema["paths"]["/api/v1/auth/token"]["post"]["requestBody"]
    form = body["content"]["application/x-www-form-urlencoded"]["schema"]
    assert set(form["required"]) == {"username", "password"}
