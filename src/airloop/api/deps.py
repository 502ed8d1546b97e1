"""What request handlers depend on: the app's store and settings, and who is asking.

Handlers declare ``store: StoreDep``, ``user: ViewerDep`` (any signed-in user) or
``user: AdminDep`` (may trigger, clear, mark, pause and edit connections).

Every dependency is ``async def``, even those that await nothing: FastAPI runs a plain
``def`` dependency in a worker thread, a thread hand-off per request that costs the
event loop more than the work itself (docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request, status

from airloop.settings import Settings
from airloop.store.runs import Store
from airloop.store.service import ServiceStore

Role = Literal["viewer", "admin"]


@dataclass(frozen=True, slots=True)
class User:
    """Who is asking. With ``auth = "none"`` every request is the loopback admin."""

    username: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


ANONYMOUS_ADMIN = User("admin", "admin")


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_dags_folder(request: Request) -> Path:
    """The folder of the DAG files the scheduler parses: ``standalone``'s own
    (``--dags-folder``, on ``app.state.dags_folder``), else the settings' ``dags_folder``."""
    folder: Path | None = getattr(request.app.state, "dags_folder", None)
    settings: Settings = request.app.state.settings
    return folder or settings.dags_folder or Path("dags")


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_service_store(request: Request) -> ServiceStore:
    return ServiceStore(request.app.state.store)


async def current_user(request: Request) -> User:
    """The authenticated user (set by the authentication middleware on
    ``request.state.user``); 401 when there is none."""
    user: User | None = getattr(request.state, "user", None)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "authentication required")
    return user


async def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs the admin role")
    return user


SettingsDep = Annotated[Settings, Depends(get_settings)]
DagsFolderDep = Annotated[Path, Depends(get_dags_folder)]
StoreDep = Annotated[Store, Depends(get_store)]
ServiceStoreDep = Annotated[ServiceStore, Depends(get_service_store)]
ViewerDep = Annotated[User, Depends(current_user)]
AdminDep = Annotated[User, Depends(admin_user)]
