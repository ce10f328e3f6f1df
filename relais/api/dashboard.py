"""The supervisors' dashboard: server-rendered pages with Chart.js charts.

Signing in from a browser: open ``/dashboard?token=<token>`` once. The token is checked, kept
in an HttpOnly, SameSite=Strict cookie scoped to ``/dashboard``, and the browser is sent to the
same page without the token in its address (so it stays out of history and access logs).
Scripts and ``Authorization: Bearer`` headers work too. ``/dashboard/logout`` forgets the cookie.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlmodel import Session, col

from models.tables import WorkItem
from relais.api.deps import SessionDep, check_day, client_is_https, today
from relais.api.scope import Scope
from relais.dashboard import chart_data, dashboard_data
from relais.domain.catalogue import CATALOGUE
from relais.errors import RelaisError
from relais.items import item_detail
from relais.rendering import environment
from relais.tokens import Principal, Role, authenticate

router = APIRouter(include_in_schema=False)

COOKIE = "relais_token"
COOKIE_PATH = "/dashboard"
#: A working day: supervisors sign in again the next morning.
COOKIE_MAX_AGE = 12 * 3600
#: Pages load their script and styles from this server only.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

STATUS_LABELS = {
    "on_track": "dans les délais",
    "at_risk": "à risque",
    "breached": "en dépassement",
    "suspended": "suspendu",
    "met": "respecté",
    "missed": "dépassé",
    "legal_breached": "délai légal dépassé",
    "within_deadline": "dans le délai légal",
}
EVENT_LABELS = {
    "received": "réception",
    "assigned": "affectation",
    "start": "prise en charge",
    "suspend": "suspension",
    "resume": "reprise",
    "complete": "fin de traitement",
    "cancel": "annulation",
}
STATE_LABELS = {
    "received": "reçu",
    "assigned": "affecté",
    "in_progress": "en cours",
    "suspended": "suspendu",
    "completed": "terminé",
    "cancelled": "annulé",
}


def _page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = (
        environment()
        .get_template(template)
        .render(
            status_labels=STATUS_LABELS,
            state_labels=STATE_LABELS,
            event_labels=EVENT_LABELS,
            **context,
        )
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def _sign_in_page(message: str) -> HTMLResponse:
    response = _page("signin.html", status_code=401, message=message)
    response.headers["WWW-Authenticate"] = "Bearer"
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


def _caller(request: Request, session: Session) -> Principal | Response:
    """The signed-in principal, or the response to send instead (redirect or sign-in page)."""
    query_token = request.query_params.get("token")
    if query_token is not None:
        principal = authenticate(session, query_token)
        if principal is None:
            return _sign_in_page("Jeton inconnu ou révoqué.")
        remaining = request.url.remove_query_params("token")
        target = remaining.path + (f"?{remaining.query}" if remaining.query else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            query_token,
            max_age=COOKIE_MAX_AGE,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=client_is_https(request),
        )
        return response
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    raw_token = credentials.strip() if scheme.lower() == "bearer" else request.cookies.get(COOKIE)
    if not raw_token:
        return _sign_in_page("Connectez-vous avec votre jeton.")
    principal = authenticate(session, raw_token)
    if principal is None:
        return _sign_in_page("Jeton inconnu ou révoqué.")
    return principal


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(
    request: Request,
    session: SessionDep,
    as_of: Annotated[date | None, Query()] = None,
    directorate: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    """Breaches, risks and backlog per service and per SIE, with charts."""
    caller = _caller(request, session)
    if isinstance(caller, Response):
        return caller
    day = today() if as_of is None else check_day(as_of, "as_of")
    service = None
    if caller.role is Role.SUPERVISOR:
        directorate = caller.directorate
    elif caller.role is Role.SERVICE:
        directorate, service = None, caller.service
    data = dashboard_data(session, as_of=day, directorate=directorate, service=service)
    return _page(
        "dashboard.html",
        principal=caller,
        data=data,
        charts=chart_data(data),
        scope_label=_scope_label(caller, directorate),
    )


def _scope_label(principal: Principal, directorate: str | None) -> str:
    if principal.role is Role.ADMIN and directorate:
        return f"direction {directorate}"
    return principal.scope_label


@router.get("/dashboard/items/{sie}/{reference:path}", response_class=HTMLResponse)
def item_page(sie: str, reference: str, request: Request, session: SessionDep) -> Response:
    """One item: state, deadlines and history (the page behind the dashboard's links)."""
    caller = _caller(request, session)
    if isinstance(caller, Response):
        return caller
    holder = (
        session.connection()
        .execute(
            select(col(WorkItem.assignee)).where(
                col(WorkItem.sie_code) == sie, col(WorkItem.reference) == reference
            )
        )
        .first()
    )
    if holder is None or not Scope.load(session, caller).allows_item(sie, holder.assignee):
        return _page(
            "message.html", status_code=404, principal=caller, message="Dossier introuvable."
        )
    try:
        item = item_detail(session, sie=sie, reference=reference, as_of=today())
    except RelaisError as error:
        return _page(
            "message.html", status_code=error.http_status, principal=caller, message=str(error)
        )
    process = CATALOGUE.get(item["process"])
    return _page(
        "item.html",
        principal=caller,
        item=item,
        process_label=process.label if process else item["process"],
    )


@router.get("/dashboard/logout", response_class=HTMLResponse)
def logout() -> Response:
    """Forget the dashboard cookie."""
    response = _page("signin.html", message="Vous êtes déconnecté.")
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response
