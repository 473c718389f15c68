"""The signed-in user's todos. Every query is scoped to the owner, so another user's
todo is indistinguishable from one that does not exist (404).

The handlers are coroutines over ``app.queries`` (see ``Database.read``/``write``):
no threadpool hop and no ORM session on the path every todo request takes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from app import queries
from app.runtime import CurrentUser, RuntimeDep
from app.schemas import Detail, Responses, TodoCreate, TodoOut, TodoPage, TodoUpdate

router = APIRouter(
    prefix="/todos",
    tags=["todos"],
    responses={401: {"model": Detail, "description": "Missing, invalid or expired token"}},
)

_NOT_FOUND: Responses = {404: {"model": Detail, "description": "No such todo for this user"}}
# SQLite integers are 64-bit; a larger id could never match and would overflow the driver.
TodoId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _found(todo: queries.Todo | None) -> TodoOut:
    if todo is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Todo not found")
    return TodoOut.model_validate(todo)


@router.get("", response_model=TodoPage)
async def list_todos(
    user: CurrentUser,
    runtime: RuntimeDep,
    done: Annotated[
        bool | None, Query(description="Only done (true) or open (false) todos")
    ] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text to find in titles")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> TodoPage:
    total, rows = await runtime.database.read(
        lambda connection: queries.list_todos(
            connection, user.id, done=done, q=q, limit=limit, offset=offset
        )
    )
    return TodoPage(
        items=[TodoOut.model_validate(row) for row in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TodoOut)
async def create_todo(body: TodoCreate, user: CurrentUser, runtime: RuntimeDep) -> TodoOut:
    fields = body.model_dump()
    todo = await runtime.database.write(
        lambda connection: queries.insert_todo(connection, user.id, fields)
    )
    return TodoOut.model_validate(todo)


@router.get("/{todo_id}", response_model=TodoOut, responses=_NOT_FOUND)
async def get_todo(todo_id: TodoId, user: CurrentUser, runtime: RuntimeDep) -> TodoOut:
    return _found(
        await runtime.database.read(
            lambda connection: queries.get_todo(connection, user.id, todo_id)
        )
    )


@router.patch("/{todo_id}", response_model=TodoOut, responses=_NOT_FOUND)
async def update_todo(
    todo_id: TodoId, body: TodoUpdate, user: CurrentUser, runtime: RuntimeDep
) -> TodoOut:
    changes = body.model_dump(exclude_unset=True)
    return _found(
        await runtime.database.write(
            lambda connection: queries.update_todo(connection, user.id, todo_id, changes)
        )
    )


@router.delete(
    "/{todo_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_NOT_FOUND,
)
async def delete_todo(todo_id: TodoId, user: CurrentUser, runtime: RuntimeDep) -> Response:
    if not await runtime.database.write(
        lambda connection: queries.delete_todo(connection, user.id, todo_id)
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Todo not found")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
