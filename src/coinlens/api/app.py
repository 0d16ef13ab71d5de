"""The coinlens web app: the review pages, ``/api/v1`` (OpenAPI docs at /docs and /redoc, served
offline), images and IIIF.

``create_app(home)`` builds it over an open home; ``coinlens serve`` runs it with uvicorn. The app
keeps one ``Identifier`` (model, index, matcher) for its lifetime.
"""

from __future__ import annotations

import mimetypes
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from coinlens import __version__
from coinlens.api.accounts import session_principal
from coinlens.api.browse import browse_pages, search_refused
from coinlens.api.rest import manifest_for, router
from coinlens.api.security import SESSION_COOKIE, LoginRequired, Reader
from coinlens.api.web import pages, render
from coinlens.catalog import Home
from coinlens.identify.service import Identifier
from coinlens.storage import KeyNotFound, StoreError
from coinlens.storage.base import check_key

UPLOAD_OVERHEAD = 1 << 20  # multipart framing and form fields beside the images


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/iiif/", "/media/"))


def create_app(home: Home, *, identifier: Identifier | None = None) -> FastAPI:
    # Swagger UI (/docs) and ReDoc (/redoc) from the files fastapi-offline installs: no CDN
    app = FastAPIOffline(
        title="coinlens",
        version=__version__,
        description="Coin identification and review. Authenticate with "
        "`Authorization: Bearer <token>` (`coinlens token create NAME`).",
    )
    app.state.home = home
    app.state.identifier = identifier or Identifier(home)

    @app.middleware("http")
    async def limit_upload_size(request: Request, call_next):
        """Refuse an oversized body before reading it (the size is checked again as it is read,
        for uploads without a Content-Length)."""
        length = request.headers.get("content-length")
        limit = 2 * home.settings.max_upload_bytes + UPLOAD_OVERHEAD
        if length and length.isdigit() and int(length) > limit:
            if request.url.path == "/search":  # the visual search page says so on the page
                cookie = request.cookies.get(SESSION_COOKIE)
                user = session_principal(home.catalog, cookie) if cookie else None
                response = search_refused(
                    request,
                    user,
                    f"the upload of {int(length) / 1e6:,.0f} MB is larger than "
                    f"{limit / 1e6:,.0f} MB: choose a smaller photo",
                    413,
                )
                response.headers["Connection"] = "close"
                return response
            return JSONResponse(
                {"error": f"request body of {int(length):,} bytes exceeds {limit:,}"},
                status_code=413,
                headers={"Connection": "close"},
            )
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={_quote(target)}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = getattr(exc, "headers", None)
        body = exc.detail if isinstance(exc.detail, dict) else {"error": exc.detail}
        if _wants_json(request):
            return JSONResponse(body, status_code=exc.status_code, headers=headers)
        return render(
            request,
            "error.html",
            {"status": exc.status_code, "message": body["error"]},
            exc.status_code,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg')}"
            for e in exc.errors()
        ]
        message = "; ".join(problems) or "invalid request"
        if _wants_json(request):
            return JSONResponse({"error": message}, status_code=422)
        return render(request, "error.html", {"status": 422, "message": message}, 422)

    @app.get("/media/{key:path}", include_in_schema=False)
    def media(key: str, _: Reader) -> Response:
        """An image or thumbnail from the object store, by its (content-addressed) key."""
        try:
            check_key(key)
        except StoreError:
            raise HTTPException(404, f"no image {key}") from None
        try:
            data = home.store.get(key)
        except KeyNotFound:
            raise HTTPException(404, f"no image {key}") from None
        except StoreError as exc:
            raise HTTPException(503, f"store unavailable: {exc}") from None
        media_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        return Response(
            data, media_type=media_type, headers={"Cache-Control": "private, max-age=31536000"}
        )

    @app.get("/iiif/{specimen_id}/manifest.json", include_in_schema=False)
    def iiif_manifest(request: Request, specimen_id: int, _: Reader) -> JSONResponse:
        return JSONResponse(manifest_for(request, specimen_id), media_type="application/ld+json")

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, Any]:
        return {"ok": True, "version": __version__}

    app.include_router(router)
    app.include_router(browse_pages)
    app.include_router(pages)
    return app


def _quote(text: str) -> str:
    return quote(text, safe="/")
