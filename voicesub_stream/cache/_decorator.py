"""``@cached``: memoise async functions, or sync ones run in a worker thread."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._base import Cache

P = ParamSpec("P")
R = TypeVar("R")


def make_key(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """``module.qualname:sha256`` of the arguments, stable across processes and runs.

    Arguments are bound to the signature first, so ``f(1, b=2)`` and ``f(1, 2)`` share a key;
    values that JSON cannot hold are keyed by ``repr``.
    """
    bound = inspect.signature(func).bind(*args, **kwargs)
    bound.apply_defaults()
    blob = json.dumps(bound.arguments, sort_keys=True, default=repr, ensure_ascii=False)
    return f"{func.__module__}.{func.__qualname__}:{hashlib.sha256(blob.encode()).hexdigest()}"


class _Flight(Generic[R]):
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: tuple[R] | None = None  # a tuple: ``None`` is a result too
        self.error: BaseException | None = None


def cached(
    cache: Cache, *, ttl: float | None = None,
    key: Callable[..., str] | None = None,
) -> Callable[[Callable[P, Awaitable[R]] | Callable[P, R]], Callable[P, Awaitable[R]]]:
    """Cache a function's results in ``cache`` for ``ttl`` seconds.

    Concurrent calls for one missing key compute it once (single flight): the others wait
    for that result, or its exception. A sync function runs in a worker thread, so the
    decorated function is always a coroutine function. ``None`` results are not cached.

    :param key: builds the cache key from the call's arguments (default :func:`make_key`)
    """

    def decorate(func: Callable[P, Awaitable[R]] | Callable[P, R]) -> Callable[P, Awaitable[R]]:
        flights: dict[str, _Flight[R]] = {}

        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            if inspect.iscoroutinefunction(func):
                done: R = await func(*args, **kwargs)
                return done
            result = await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs))
            # func is the sync kind here, which mypy cannot narrow a union of callables to.
            return result  # type: ignore[return-value]

        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            k = key(*args, **kwargs) if key else make_key(func, args, kwargs)
            value: R | None = await cache.get(k)  # the cache holds what func returned
            if value is not None:
                return value
            flight = flights.get(k)
            if flight is not None:
                await flight.done.wait()
                if flight.error is not None:
                    raise flight.error
                assert flight.result is not None  # set before done, when no error
                return flight.result[0]
            flight = flights[k] = _Flight()
            try:
                result = await call(*args, **kwargs)
                if result is not None:
                    await cache.set(k, result, ttl)
                flight.result = (result,)
                return result
            except BaseException as exc:
                flight.error = exc
                raise
            finally:
                del flights[k]
                flight.done.set()

        return wrapper

    return decorate
