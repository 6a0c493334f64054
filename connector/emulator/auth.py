"""Who may call what: bearer tokens (401), the upload role and the job roles (403), the
service principal and job a path names (404), and the introspection API's loopback rule.

Documented: 401 ``InvalidAuthenticationToken`` with "Access token is empty." and "Access
token has expired or is not yet valid."; bulkUpload needs
``SynchronizationData-User.Upload``; job and schema calls need
``Application.ReadWrite.OwnedBy`` or ``Synchronization.Read(Write).All`` (permission
tables of the Graph job and schema pages). Which token has which role is the emulator's
configuration (docs/emulator.md, *Assumptions*).
"""

from __future__ import annotations

import ipaddress

from starlette.requests import Request
from starlette.responses import Response

from connector.emulator.job import JobRuntime
from connector.emulator.responses import graph_error, json_response, tenant

__all__ = [
    "authenticate",
    "introspection_denied",
    "is_loopback",
    "job_or_404",
    "job_roles_denied",
]

UPLOAD_ROLE = "SynchronizationData-User.Upload"


def authenticate(request: Request, *, upload: bool = False) -> Response | None:
    """401 for a missing/unknown/expired token; 403 when ``upload`` needs the role."""
    cfg = tenant(request).config
    token = _bearer(request)
    if not token:
        return graph_error(request, 401, "InvalidAuthenticationToken", "Access token is empty.")
    if token in cfg.expired_tokens:
        return graph_error(
            request,
            401,
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        )
    if token in cfg.tokens or token in cfg.tokens_without_job_roles:
        return None
    if token in cfg.tokens_without_upload_role:
        if upload:
            return graph_error(
                request,
                403,
                "Authorization_RequestDenied",
                f"Insufficient privileges to complete the operation: the application needs the"
                f" {UPLOAD_ROLE} (or {UPLOAD_ROLE}.OwnedBy) application permission.",
            )
        return None
    return graph_error(
        request, 401, "InvalidAuthenticationToken", "Access token validation failure."
    )


def job_roles_denied(request: Request) -> Response | None:
    """403 for a token without the roles the job and schema APIs need."""
    if _bearer(request) not in tenant(request).config.tokens_without_job_roles:
        return None
    return graph_error(
        request,
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation: the application needs"
        " Synchronization.Read.All / Synchronization.ReadWrite.All (or"
        " Application.ReadWrite.OwnedBy).",
    )


def job_or_404(request: Request) -> JobRuntime | Response:
    """The job the path names, or 404 ``ResourceNotFound`` saying which id is unknown (the
    service principal id compared case-insensitively, the job id exactly)."""
    sp = request.path_params["sp"]
    job_id = request.path_params["job"]
    state = tenant(request)
    job = state.job(sp, job_id)
    if job is not None:
        return job
    what = (
        f"synchronization job '{job_id}'"
        if state.has_service_principal(sp)
        else f"service principal '{sp}'"
    )
    return graph_error(request, 404, "ResourceNotFound", f"The {what} does not exist.")


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (also IPv4-mapped, ``::ffff:127.0.0.1``) and ``localhost``."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def introspection_denied(request: Request) -> Response | None:
    """``/_emulator/*`` reads and rewrites the whole tenant: loopback clients may use it
    freely (tests, the demo); any other client needs one of the emulator's full tokens,
    so ``--host 0.0.0.0`` does not hand the directory to the network."""
    client = request.scope.get("client")
    if client and is_loopback(str(client[0])):
        return None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip() in tenant(request).config.tokens:
        return None
    return json_response(
        {
            "error": "the introspection API answers loopback clients only, or a client that"
            " sends 'Authorization: Bearer <the emulator's token>'"
        },
        403,
    )
