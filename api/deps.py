"""Request dependencies, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.state import AppState
from copilot.auth import (
    DEFAULT_TENANT,
    REVOKED_TOKEN,
    Principal,
    is_admin_key,
    stream_key_valid,
)
from copilot.errors import NotFound, RateLimited, Unauthorized
from copilot.ratelimit import client_ip
from copilot.store import apikeys, chats, runs
from copilot.store.models import Chat, Run


# Dependencies are ``async def`` even when they do not await: FastAPI runs a plain ``def``
# dependency in its thread pool, a thread hand-off on every request.
async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.copilot
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """The request boundary commits; repositories only flush."""
    async with state.sessions() as session, session.begin():
        yield session


# scope="function": the commit runs before the response is sent. FastAPI's default runs a
# yield dependency's exit after the response, so a client could get 200 for a write that was
# not yet committed (and read its own write back stale, or never, if the commit then failed).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def authenticate(state: AppState, api_key: str | None, tenant_id: str | None) -> Principal:
    settings = state.settings
    if settings.dev_mode:
        return Principal(kind="dev", tenant_id=tenant_id or DEFAULT_TENANT, user_id=None)
    if not api_key:
        raise Unauthorized("missing x-api-key header")
    if is_admin_key(settings, api_key):
        return Principal(kind="admin", tenant_id=tenant_id or DEFAULT_TENANT, user_id=None)
    if api_key.startswith(apikeys.KEY_PREFIX):
        async with state.sessions() as session:
            row = await apikeys.find_key(session, key=api_key)
        if row is not None:
            return Principal(
                kind=row.kind, tenant_id=row.tenant_id, user_id=row.user_id, key_id=row.id
            )
    raise Unauthorized("invalid API key")


async def get_principal(
    state: StateDep,
    x_api_key: Annotated[str | None, Header()] = None,
    tenant_id: Annotated[str | None, Query(alias="tenantId", max_length=64)] = None,
) -> Principal:
    return await authenticate(state, x_api_key, tenant_id)


PrincipalDep = Annotated[Principal, Depends(get_principal)]

UserIdQuery = Annotated[str | None, Query(alias="userId")]


async def get_acting_user(principal: PrincipalDep, user_id: UserIdQuery = None) -> str:
    """The user a request acts for (``?userId=``, checked against the key: 403, or 400 when a
    key that acts for many users names none)."""
    return principal.acting_user(user_id)


ActingUserDep = Annotated[str, Depends(get_acting_user)]


# The one "owned or 404" rule: another owner's object is answered exactly like a missing one
# (never reveal that it exists). The contract fixes these bodies.
async def owned_chat(session: AsyncSession, *, tenant_id: str, user_id: str, chat_id: str) -> Chat:
    chat = await chats.get_chat(session, tenant_id=tenant_id, user_id=user_id, chat_id=chat_id)
    if chat is None:
        raise NotFound("chat not found", code="chat_not_found")
    return chat


async def owned_run(session: AsyncSession, *, tenant_id: str, user_id: str, run_id: str) -> Run:
    run = await runs.get_run(session, tenant_id=tenant_id, user_id=user_id, run_id=run_id)
    if run is None:
        raise NotFound("run not found", code="run_not_found")
    return run


# For routes with the id in the path. The checks keep the order the handlers had: the route's
# own dependencies (rate limit) first, then auth (401) and the acting user (403/400) as
# sub-dependencies, the lookup (404) last. An id in the body is validated (400) only after
# every dependency ran: those handlers call owned_chat/owned_run themselves. The session is
# the handler's own (FastAPI caches a dependency per request): an owned chat can be deleted
# in it, and the request boundary commits.
async def get_owned_chat(
    chat_id: str, session: SessionDep, principal: PrincipalDep, acting: ActingUserDep
) -> Chat:
    return await owned_chat(session, tenant_id=principal.tenant_id, user_id=acting, chat_id=chat_id)


async def get_owned_run(
    run_id: str, session: SessionDep, principal: PrincipalDep, acting: ActingUserDep
) -> Run:
    return await owned_run(session, tenant_id=principal.tenant_id, user_id=acting, run_id=run_id)


OwnedChat = Annotated[Chat, Depends(get_owned_chat)]
OwnedRun = Annotated[Run, Depends(get_owned_run)]


async def check_stream_key(state: AppState, principal: Principal, session: AsyncSession) -> None:
    """A stream token lives only as long as the key it was issued to (revoked: 401 at once)."""
    ref = principal.key_id
    live = False
    if ref is not None and not ref.startswith("admin:") and ref != "dev":
        live = await apikeys.key_is_live(session, key_id=ref, tenant_id=principal.tenant_id)
    if not stream_key_valid(state.settings, ref, issued_key_live=live):
        raise Unauthorized(REVOKED_TOKEN)


async def request_ip(request: Request, state: StateDep) -> str:
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-forwarded-for"), state.trusted_proxies)


ClientIpDep = Annotated[str, Depends(request_ip)]


async def limit_reads(state: StateDep, principal: PrincipalDep, ip: ClientIpDep) -> None:
    """Reads, rejoins, confirmations and mark-complete: one higher limit per caller and IP."""
    who = principal.key_id or f"{principal.kind}:{principal.tenant_id}:{principal.user_id}"
    verdict = await state.limiter.hit("reads", f"{who}:{ip}", state.settings.rate_limit_reads)
    if not verdict.allowed:
        state.metrics.rate_limited.labels(scope="reads").inc()
        raise RateLimited(
            f"too many requests; retry in {verdict.reset_s}s",
            headers={
                "Retry-After": str(verdict.reset_s),
                **verdict.headers(state.limiter.window_s),
            },
        )


ReadLimit = Depends(limit_reads)
