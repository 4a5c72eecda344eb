"""The dashboard at ``/dashboard``: one page and its script and styles,
shipped in the package (no CDN, no build step), fed by the API and its
Server-Sent Events. With a token configured, a login page sets an
HttpOnly cookie that the API accepts in place of the header."""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from conveyor.server.auth import COOKIE, token_matches

router = APIRouter(prefix="/dashboard", include_in_schema=False)
#: The app's root, which sends a browser on to the dashboard.
root = APIRouter(include_in_schema=False)
_STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


@cache
def _asset(name: str) -> str:
    """A file of the page, read once per process (they ship with the package)."""
    return (resources.files("conveyor.server") / "static" / name).read_text(encoding="utf-8")


def _root(request: Request) -> str:
    """Where the API is mounted (``""`` at the top, ``/admin`` under a mount)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _page(name: str, request: Request, **values: str) -> HTMLResponse:
    text = _asset(name).replace("{{root}}", html.escape(_root(request)))
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return HTMLResponse(text, headers={"Cache-Control": "no-store"})


def _redirect(request: Request, path: str) -> RedirectResponse:
    return RedirectResponse(_root(request) + path, status_code=status.HTTP_303_SEE_OTHER)


def _signed_in(request: Request) -> bool:
    expected = request.app.state.conveyor.token
    return not expected or token_matches(request.cookies.get(COOKIE), expected)


@root.get("/")
async def to_dashboard(request: Request) -> RedirectResponse:
    """``/`` (``/admin/queues`` when mounted there) opens the dashboard."""
    return RedirectResponse(_root(request) + "/dashboard", status_code=status.HTTP_307_TEMPORARY_REDIRECT)


@router.get("")
async def page(request: Request) -> Response:
    if not _signed_in(request):
        return _redirect(request, "/dashboard/login")
    return _page("index.html", request)


@router.get("/login")
async def login_page(request: Request, failed: bool = False) -> HTMLResponse:
    return _page("login.html", request, message="Wrong token." if failed else "")


@router.post("/login")
async def login(request: Request, token: Annotated[str, Form(max_length=4096)]) -> Response:
    expected = request.app.state.conveyor.token
    if expected and not token_matches(token, expected):
        return _redirect(request, "/dashboard/login?failed=true")
    response = _redirect(request, "/dashboard")
    if expected:
        response.set_cookie(
            COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https"
        )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = _redirect(request, "/dashboard/login")
    response.delete_cookie(COOKIE)
    return response


@router.get("/static/{name}")
async def static(name: str) -> Response:
    media = _STATIC.get(name)
    if media is None:
        return Response(status_code=status.HTTP_404_NOT_FOUND)
    return Response(_asset(name), media_type=media, headers={"Cache-Control": "no-cache"})
