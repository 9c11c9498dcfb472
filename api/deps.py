"""Request dependencies, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.state import AppState
from copilot.auth import Principal, authenticate


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.copilot
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """The request boundary commits; repositories only flush."""
    async with state.sessions() as session, session.begin():
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def get_principal(state: StateDep, x_api_key: Annotated[str | None, Header()] = None) -> Principal:
    return authenticate(state.settings, x_api_key)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
