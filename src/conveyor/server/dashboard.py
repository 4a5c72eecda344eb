"""The dashboard at ``/dashboard``: one page and its script and styles,
shipped in the package (no CDN, no build step), fed by the API and its
Server-Sent Events. With a token configured, a login page sets an
HttpOnly cookie that the API accepts in place of the header."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from conveyor.server.auth import COOKIE, token_matches

router = APIRouter(prefix="/dashboard", include_in_schema=False)
_STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


@cache
def _asset(name: str) -> str:
    """A file of the page, read once per process (they ship with the package)."""
    return (resources.files("conveyor.server") / "static" / name).read_text(encoding="utf-8")


def _signed_in(request: Request) -> bool:
    expected = request.app.state.conveyor.token
    return not expected or token_matches(request.cookies.get(COOKIE), expected)


@router.get("")
async def page(request: Request) -> Response:
    if not _signed_in(request):
        return RedirectResponse("/dashboard/login", status_code=status.HTTP_303_SEE_OTHER)
    return HTMLResponse(_asset("index.html"), headers={"Cache-Control": "no-store"})


@router.get("/login")
async def login_page(request: Request, failed: bool = False) -> HTMLResponse:
    html = _asset("login.html").replace("{{message}}", "Wrong token." if failed else "")
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.post("/login")
async def login(request: Request, token: Annotated[str, Form(max_length=4096)]) -> Response:
    expected = request.app.state.conveyor.token
    if expected and not token_matches(token, expected):
        return RedirectResponse("/dashboard/login?failed=true", status_code=status.HTTP_303_SEE_OTHER)
    response = RedirectResponse("/dashboard", status_code=status.HTTP_303_SEE_OTHER)
    if expected:
        response.set_cookie(
            COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https"
        )
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/dashboard/login", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE)
    return response


@router.get("/static/{name}")
async def static(name: str) -> Response:
    media = _STATIC.get(name)
    if media is None:
        return Response(status_code=status.HTTP_404_NOT_FOUND)
    return Response(_asset(name), media_type=media, headers={"Cache-Control": "no-cache"})
