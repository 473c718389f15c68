"""The signed-in user's todos. Every query is scoped to the owner, so another user's
todo is indistinguishable from one that does not exist (404)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from sqlalchemy import ColumnElement, func
from sqlmodel import Session, col, select

from app.models import Todo, utcnow
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


def _owned(session: Session, todo_id: int, owner_id: int | None) -> Todo:
    todo = session.exec(select(Todo).where(Todo.id == todo_id, Todo.owner_id == owner_id)).first()
    if todo is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Todo not found")
    return todo


@router.get("", response_model=TodoPage)
def list_todos(
    user: CurrentUser,
    runtime: RuntimeDep,
    done: Annotated[
        bool | None, Query(description="Only done (true) or open (false) todos")
    ] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text to find in titles")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> TodoPage:
    conditions: list[ColumnElement[bool]] = [col(Todo.owner_id) == user.id]
    if done is not None:
        conditions.append(col(Todo.done) == done)
    if q:
        # autoescape: a "%" or "_" typed by the user is matched literally.
        conditions.append(col(Todo.title).contains(q, autoescape=True))
    with runtime.database.reading() as session:
        total = session.exec(select(func.count()).select_from(Todo).where(*conditions)).one()
        rows = session.exec(
            select(Todo)
            .where(*conditions)
            .order_by(col(Todo.created_at).desc(), col(Todo.id).desc())
            .limit(limit)
            .offset(offset)
        ).all()
    return TodoPage(
        items=[TodoOut.model_validate(row) for row in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TodoOut)
def create_todo(body: TodoCreate, user: CurrentUser, runtime: RuntimeDep) -> Todo:
    assert user.id is not None
    todo = Todo(owner_id=user.id, **body.model_dump())
    with runtime.database.writing() as session:
        session.add(todo)
    return todo


@router.get("/{todo_id}", response_model=TodoOut, responses=_NOT_FOUND)
def get_todo(todo_id: TodoId, user: CurrentUser, runtime: RuntimeDep) -> Todo:
    with runtime.database.reading() as session:
        return _owned(session, todo_id, user.id)


@router.patch("/{todo_id}", response_model=TodoOut, responses=_NOT_FOUND)
def update_todo(todo_id: TodoId, body: TodoUpdate, user: CurrentUser, runtime: RuntimeDep) -> Todo:
    changes = body.model_dump(exclude_unset=True)
    with runtime.database.writing() as session:
        todo = _owned(session, todo_id, user.id)
        for field, value in changes.items():
            setattr(todo, field, value)
        if changes:
            todo.updated_at = utcnow()
    return todo


@router.delete(
    "/{todo_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_NOT_FOUND,
)
def delete_todo(todo_id: TodoId, user: CurrentUser, runtime: RuntimeDep) -> Response:
    with runtime.database.writing() as session:
        session.delete(_owned(session, todo_id, user.id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
