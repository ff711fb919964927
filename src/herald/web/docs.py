"""The API reference: ``/docs`` (Swagger UI) and ``/openapi.json``, JSON API only.

FastAPI's own ``/docs`` loads Swagger UI from a CDN with an inline script: blank
offline, and refused by Herald's CSP. Here every asset comes from ``/static``
(Swagger UI vendored from the ``swagger-ui-dist`` npm package, see
``static/swagger-ui/README.md``) and the scripts carry the request's CSP nonce.

``/openapi.json`` describes ``/api/v1`` only: the HTML pages, health probes and
development pages are not part of the JSON API, and it is not served at all in production.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse

from herald.core.templating import render
from herald.web.errors import PROBLEM_MEDIA_TYPE

API_PREFIX = "/api/v1/"
OPENAPI_URL = "/openapi.json"
# Routes that need no credentials; every other API operation takes a bearer token.
PUBLIC_OPERATIONS = {("/api/v1/auth/token", "post")}
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key (hrld_…) or an access token from POST /api/v1/auth/token.",
}
_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    html = render(
        "docs.html",
        openapi_url=OPENAPI_URL,
        csp_nonce=getattr(request.state, "csp_nonce", ""),
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


class HeraldAPI(FastAPI):
    """FastAPI whose OpenAPI document is the JSON API's alone."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = api_only(super().openapi())
        return self.openapi_schema


def api_only(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the paths under ``/api/v1/`` only, the component schemas they
    use, and the bearer authentication they take."""
    result = copy.deepcopy(schema)
    result["paths"] = {
        path: item for path, item in schema.get("paths", {}).items() if path.startswith(API_PREFIX)
    }
    for path, item in result["paths"].items():
        for method, operation in item.items():
            if method not in _HTTP_METHODS:
                continue
            if (path, method) not in PUBLIC_OPERATIONS:
                operation.setdefault("security", [{"bearer": []}])
            _problem_responses(operation.get("responses", {}))
    components = result.setdefault("components", {})
    used = _referenced_schemas(result["paths"], components.get("schemas", {}))
    if "schemas" in components:
        components["schemas"] = {
            name: value for name, value in components["schemas"].items() if name in used
        }
    components.setdefault("securitySchemes", {})["bearer"] = BEARER_SCHEME
    return result


def _problem_responses(responses: dict[str, Any]) -> None:
    """Error responses are problem documents (web/errors.py): their JSON is filed under
    ``application/problem+json``. FastAPI's own 422 for a request that fails validation
    is dropped: Herald answers those with a 400 problem."""
    for status, response in list(responses.items()):
        content = response.get("content", {})
        if (
            content.get("application/json", {})
            .get("schema", {})
            .get("$ref", "")
            .endswith("/HTTPValidationError")
        ):
            del responses[status]
            continue
        if status[:1] in {"4", "5"} and "application/json" in content:
            content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")


def _referenced_schemas(paths: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    prefix = "#/components/schemas/"
    used: set[str] = set()
    pending: list[Any] = [paths]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix):
                name = ref[len(prefix) :]
                if name not in used:
                    used.add(name)
                    pending.append(schemas.get(name))
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return used
