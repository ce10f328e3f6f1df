"""The FastAPI application: routers, static files and the one translation of errors.

``create_app()`` builds a fresh application and reads no settings: the database and the
clock are reached per request, so tests and ``relais api`` can point it anywhere.
"""

from __future__ import annotations

import gc
import logging
import traceback

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError

from relais.errors import RelaisError
from relais.rendering import STATIC_DIR

logger = logging.getLogger("relais.api")

DESCRIPTION = """
Read work items, their SLA and legal deadlines, post lifecycle events, list breaches and
conventions, fetch monthly reports.

Every endpoint but `GET /health` needs `Authorization: Bearer <token>` (see
`relais tokens create`). A supervisor token sees the items of its directorate (either side of a
convention), a service token the items its service holds; anything else answers 404.
"""


async def _relais_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RelaisError)
    return JSONResponse({"detail": error.message}, status_code=error.http_status)


async def _data_error(_request: Request, _error: Exception) -> JSONResponse:
    # The database refused a value the schema let through (e.g. a NUL character on PostgreSQL).
    return JSONResponse({"detail": "a value in the request cannot be stored or searched"}, 422)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    # Log where it broke, not the message: database errors may quote row values.
    frame = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    where = f"{frame.filename}:{frame.lineno}" if frame else "?"
    logger.error(
        "unexpected %s on %s %s at %s",
        type(error).__name__,
        request.method,
        request.url.path,
        where,
    )
    return JSONResponse({"detail": "internal error"}, status_code=500)


def create_app() -> FastAPI:
    """A new Relais API application (JSON API, dashboard, static files)."""
    from relais.api import dashboard, routes

    app = FastAPI(
        title="Relais",
        summary="Work items of the SIEs, their routing to remote services, SLAs and reports.",
        description=DESCRIPTION,
        version="1.0",
        # The interactive pages load their scripts from a CDN, unreachable on these networks.
        docs_url=None,
        redoc_url=None,
    )
    app.add_exception_handler(RelaisError, _relais_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(Exception, _unexpected)
    app.include_router(routes.router)
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def create_served_app() -> FastAPI:
    """The application as ``relais api`` serves it (called once in each server process).

    Everything loaded by then (modules, the application, its routes) lives as long as the
    process: frozen out of the cycle collector, it is no longer walked by every full
    collection, which otherwise paused all requests of the process for ~50 ms every few
    dozen large answers.
    """
    app = create_app()
    gc.freeze()
    return app
