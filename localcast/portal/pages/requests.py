"""Appliance requests: a partner asks, the planner answers, the operator decides.

* ``GET /portal/requests``: a partner's user sees its partner's requests and the
  form; the operator every partner's (``?partner=`` filters) and no form.
* ``POST /portal/requests``: a partner's new request. Invalid fields answer 422 with
  the form as sent and one message per field; a valid one is stored
  ``evaluating`` and the planner answers it in the background
  (:mod:`localcast.portal.evaluator`: a few seconds), then 303 to its page.
* ``GET /portal/requests/{id}``: the request, the planner's answer, the decision;
  ``GET /portal/requests/{id}/status`` its status as JSON (the page polls it while
  the planner works).
* ``POST /portal/requests/{id}/approve`` and ``/decline`` (operator only; a note,
  required to decline).

A partner's user asking for another partner's request gets 404, as for an id
that does not exist; operator routes answer a partner's user 404 too.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from localcast.control.deps import Plane
from localcast.control.errors import Conflict, NotFound
from localcast.control.service import ControlPlane
from localcast.portal import eligibility, scope
from localcast.portal.auth import Csrf, CurrentViewer, OperatorViewer, Viewer
from localcast.portal.eligibility import FIELDS, PORT_SPEEDS_GBPS, RequestForm
from localcast.portal.evaluator import RUNNER
from localcast.portal.render import page, see_other, url
from localcast.portal.requests_store import (
    APPROVED,
    DECLINED,
    EVALUATING,
    FAILED,
    MAX_NOTE,
    SUBMITTED,
    ApplianceRequest,
    RequestStore,
)
from localcast.portal.views.fleet_view import format_time

router = APIRouter()

STATUS = {  # status -> (badge class, text)
    EVALUATING: ("status-unknown", "Evaluating"),
    SUBMITTED: ("status-warning", "Awaiting decision"),
    APPROVED: ("status-ok", "Approved"),
    DECLINED: ("status-error", "Declined"),
    FAILED: ("status-error", "Evaluation failed"),
}
EMPTY_FORM = dict.fromkeys(FIELDS, "")
HINTS = {
    "peak_gbps": "Your viewers' video traffic at the busiest hour of the day, Gbit/s.",
    "sites": (
        "One site a line: its name or city and its share of your traffic, e.g. "
        "“Paris: 60%”. Sites without a share split what is left equally."
    ),
    "rack_u": f"At each site. An appliance takes {eligibility.APPLIANCE_U}U.",
    "power_w": f"An appliance draws up to {eligibility.APPLIANCE_W} W.",
    "port_count": "Network ports you can give each appliance.",
    "port_gbps": "The speed of each of those ports.",
    "contact": "Who to call, when you could install, anything else we should know.",
}


def _store(plane: ControlPlane) -> RequestStore:
    return RequestStore(plane.sessions)


def _visible(viewer: Viewer, plane: ControlPlane, request_id: int) -> ApplianceRequest:
    found = _store(plane).get(request_id)
    if found is None or not (viewer.is_operator or found.partner == viewer.partner):
        raise NotFound("no such appliance request")
    return found


def _summary(r: ApplianceRequest) -> dict[str, Any]:
    """A request as the pages show it."""
    badge, text = STATUS.get(r.status, ("status-unknown", r.status))
    form = r.form
    e = r.eligibility or {}
    answer = None
    if r.status not in (EVALUATING, FAILED) and "eligible" in e:
        answer = ("status-ok", "Eligible") if e["eligible"] else ("status-warning", "Not eligible")
    return {
        "r": r,
        "badge": badge,
        "status_text": text,
        "created": format_time(r.created_at),
        "decided": format_time(r.decided_at),
        "peak": f"{float(form.get('peak_gbps', 0)):g} Gbit/s",
        "sites": ", ".join(s["name"] for s in form.get("sites", [])),
        "answer": answer,
        "href": f"/portal/requests/{r.id}",
    }


def _list_page(
    request: Request,
    viewer: Viewer,
    plane: ControlPlane,
    partner: str | None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    if viewer.is_operator:
        pid = scope.partner_for(viewer, plane, partner) if partner else None
        choices = scope.partners(plane)
    else:
        pid = scope.partner_for(viewer, plane, partner)
        choices = []
    store = _store(plane)
    found = store.list_for(pid)
    for r in found:
        if r.status == EVALUATING:
            RUNNER.ensure(store, r.id, r.form)
    title = "Appliance requests"
    if not viewer.is_operator:
        title = "Request an appliance"
    return page(
        request,
        viewer,
        "requests.html",
        title,
        status_code=status_code,
        requests=[_summary(r) for r in found],
        operator=viewer.is_operator,
        filter_partner=pid or "",
        partner_choices_all=choices,
        partner_id=pid or "",
        values=values or EMPTY_FORM,
        errors=errors or {},
        hints=HINTS,
        speeds=PORT_SPEEDS_GBPS,
        pending=sum(1 for r in found if r.status == SUBMITTED),
    )


@router.get("/portal/requests", response_class=HTMLResponse)
def requests_page(
    request: Request, viewer: CurrentViewer, plane: Plane, partner: str | None = None
) -> HTMLResponse:
    return _list_page(request, viewer, plane, partner)


@router.post("/portal/requests", dependencies=[Csrf], response_class=HTMLResponse)
def submit_request(
    request: Request,
    viewer: CurrentViewer,
    plane: Plane,
    peak_gbps: Annotated[str, Form()] = "",
    sites: Annotated[str, Form()] = "",
    rack_u: Annotated[str, Form()] = "",
    power_w: Annotated[str, Form()] = "",
    port_count: Annotated[str, Form()] = "",
    port_gbps: Annotated[str, Form()] = "",
    contact: Annotated[str, Form()] = "",
) -> Response:
    if viewer.is_operator or viewer.partner is None:
        raise NotFound("appliance requests are made by a partner's users")
    values = {
        "peak_gbps": peak_gbps,
        "sites": sites,
        "rack_u": rack_u,
        "power_w": power_w,
        "port_count": port_count,
        "port_gbps": port_gbps,
        "contact": contact,
    }
    form, errors = eligibility.parse_form(values)
    if form is None:
        return _list_page(request, viewer, plane, None, values, errors, status_code=422)
    store = _store(plane)
    rid = store.create(viewer.partner, viewer.user_id, form.to_json(), plane.clock())
    RUNNER.submit(store, rid, form)
    return see_other(
        request,
        f"/portal/requests/{rid}",
        flash=f"Request #{rid} sent. The planner is working out its answer (a few seconds).",
    )


def _detail_page(
    request: Request,
    viewer: Viewer,
    plane: ControlPlane,
    found: ApplianceRequest,
    note: str = "",
    note_error: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    if found.status == EVALUATING:
        RUNNER.ensure(_store(plane), found.id, found.form)
    form = RequestForm.from_json(found.form)
    e = found.eligibility or {}
    per_site = e.get("appliances_per_site", {})
    return page(
        request,
        viewer,
        "request.html",
        f"Appliance request #{found.id}",
        status_code=status_code,
        s=_summary(found),
        form=form,
        sites=[
            {
                "name": site.name,
                "share": f"{site.share * 100:.1f}%",
                "count": per_site.get(site.name),
            }
            for site in form.sites
        ],
        e=e,
        operator=viewer.is_operator,
        back=url("/portal/requests", partner=found.partner if viewer.is_operator else None),
        note=note,
        note_error=note_error,
        max_note=MAX_NOTE,
        evaluating=found.status == EVALUATING,
    )


@router.get("/portal/requests/{request_id}", response_class=HTMLResponse)
def request_page(
    request: Request, viewer: CurrentViewer, plane: Plane, request_id: int
) -> HTMLResponse:
    return _detail_page(request, viewer, plane, _visible(viewer, plane, request_id))


@router.get("/portal/requests/{request_id}/status")
def request_status(viewer: CurrentViewer, plane: Plane, request_id: int) -> JSONResponse:
    found = _visible(viewer, plane, request_id)
    return JSONResponse(
        {"id": found.id, "status": found.status}, headers={"Cache-Control": "no-store"}
    )


def _decide(
    request: Request,
    viewer: Viewer,
    plane: ControlPlane,
    request_id: int,
    approve: bool,
    note: str,
) -> Response:
    found = _visible(viewer, plane, request_id)
    note = note.strip()
    error = ""
    if not approve and not note:
        error = "Say why you decline: the partner reads this note."
    elif len(note) > MAX_NOTE:
        error = f"At most {MAX_NOTE} characters (you wrote {len(note)})."
    if error:
        return _detail_page(request, viewer, plane, found, note, error, status_code=422)
    try:
        _store(plane).decide(request_id, approve, viewer.user_id, note, plane.clock())
    except Conflict as exc:
        return see_other(request, f"/portal/requests/{request_id}", flash=exc.reason)
    done = "approved" if approve else "declined"
    return see_other(
        request, f"/portal/requests/{request_id}", flash=f"Request #{request_id} {done}."
    )


@router.post("/portal/requests/{request_id}/approve", dependencies=[Csrf])
def approve_request(
    request: Request,
    viewer: OperatorViewer,
    plane: Plane,
    request_id: int,
    note: Annotated[str, Form()] = "",
) -> Response:
    return _decide(request, viewer, plane, request_id, True, note)


@router.post("/portal/requests/{request_id}/decline", dependencies=[Csrf])
def decline_request(
    request: Request,
    viewer: OperatorViewer,
    plane: Plane,
    request_id: int,
    note: Annotated[str, Form()] = "",
) -> Response:
    return _decide(request, viewer, plane, request_id, False, note)
