"""What a task's signature says: its arguments as a pydantic model (the
context first, then typed arguments), its return type as an adapter that
reads a stored result back, and validation errors in one line."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, get_type_hints

from pydantic import (
    BaseModel,
    ConfigDict,
    PydanticSchemaGenerationError,
    TypeAdapter,
    ValidationError,
    create_model,
)

from conveyor.errors import InvalidTask


def arguments_model(fn: Callable[..., Any], context: type[Any]) -> type[BaseModel]:
    """A pydantic model of ``fn``'s parameters after the first (the
    context). Raises TypeError for a first parameter that cannot be the
    context, ``*args``/``**kwargs`` or a missing hint."""
    params = list(inspect.signature(fn).parameters.values())
    hints = get_type_hints(fn)
    _check_context(fn, params, hints, context)
    fields: dict[str, Any] = {}
    for param in params[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise InvalidTask(
                f"task {fn.__qualname__}: *args and **kwargs cannot be checked; name each argument"
            )
        if param.name not in hints:
            raise InvalidTask(f"task {fn.__qualname__}: argument {param.name!r} needs a type hint")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints[param.name], default)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=False, allow_inf_nan=False)
    return create_model(f"{fn.__name__}_arguments", __config__=config, **fields)


def _check_context(
    fn: Callable[..., Any], params: list[inspect.Parameter], hints: dict[str, Any], context: type[Any]
) -> None:
    """The first parameter receives the context (``context``, a
    TaskContext or a SyncTaskContext): it must be positional, without a
    default, and typed so if typed at all (``async def f(n: int)`` forgot
    the context: its jobs could never run)."""
    kind = "async def" if inspect.iscoroutinefunction(fn) else "def"
    need = (
        f"task {fn.__qualname__} must take a {context.__name__} as its first parameter "
        f"({kind} {fn.__name__}(ctx: {context.__name__}, ...))"
    )
    if not params:
        raise InvalidTask(need)
    first = params[0]
    if (
        first.kind not in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD)
        or first.default is not first.empty
    ):
        raise InvalidTask(f"{need}; {first.name!r} cannot be it")
    hint = hints.get(first.name)
    if hint is not None and hint is not Any and not (isinstance(hint, type) and issubclass(hint, context)):
        raise InvalidTask(
            f"{need}; its first parameter {first.name!r} is typed {getattr(hint, '__name__', hint)}"
        )


def result_adapter(fn: Callable[..., Any]) -> TypeAdapter[Any]:
    """Reads a stored (JSON) result back as ``fn``'s declared return type.
    Raises TypeError for a return type that JSON cannot carry."""
    returns = get_type_hints(fn).get("return", Any)
    try:
        return TypeAdapter(returns)
    except PydanticSchemaGenerationError:
        raise InvalidTask(
            f"task {fn.__qualname__}: its return type {getattr(returns, '__name__', returns)} "
            "cannot be stored as JSON (return a pydantic model, a dataclass or JSON values)"
        ) from None


def describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in exc.errors()
    )
