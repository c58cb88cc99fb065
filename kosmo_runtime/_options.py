"""``RunOptions``: what one run or call may do (limits, dry run, read-only, write policy, approver, key).

Every surface builds one and passes it through: ``Runtime.run``/``call``/``session`` (their keyword
arguments are a shorthand for it), the worker processes (it is pickled to them, without the
approver), the MCP server, the REPL and the CLI; ``Runtime(options=...)`` holds the defaults
(``Runtime.defaults``). It is checked once, when it is made or changed, and merged once, over the
Runtime's defaults (:meth:`RunOptions.over`), where a run can only be stricter than its Runtime:
the write policy is the stricter of the two, ``dry_run`` and ``read_only`` hold if either says so.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, TypedDict

from ._limits import Limits

if TYPE_CHECKING:
    from ._accounts import WritePolicy
    from ._policy import Approver

__all__ = ["RunOptions", "RunOverrides"]

_POLICIES = ("allow", "ask", "deny")


class RunOverrides(TypedDict, total=False):
    """The keyword arguments ``Runtime.run``, ``call`` and ``session`` take for their ``RunOptions``."""

    limits: Limits | None
    dry_run: bool
    read_only: bool
    writes: WritePolicy | None
    approve: Approver | None
    idempotency_key: str | None


@dataclass(frozen=True)
class RunOptions:
    """What one run (or call, or session) may do.

    ``limits``           the run's ``Limits`` (``None``: the Runtime's).
    ``dry_run``          reads run; each write is described (``would_send``) instead of sent.
    ``read_only``        every write is denied.
    ``writes``           the run's write policy, ``allow``, ``ask`` or ``deny`` (``None``: the Runtime's);
                         the strictest of it, the Runtime's and the account's applies.
    ``approve``          the callback deciding ``ask`` writes (``None``: the Runtime's; none: denied).
    ``idempotency_key``  a retry of the run under the same key never sends one of its writes twice.
    """

    limits: Limits | None = None
    dry_run: bool = False
    read_only: bool = False
    writes: WritePolicy | None = None
    approve: Approver | None = None
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        if self.limits is not None and not isinstance(self.limits, Limits):
            raise TypeError(f"run option limits must be a Limits or None, got {type(self.limits).__name__}; "
                            "pass e.g. limits=Limits(wall_time=10)")
        for name in ("dry_run", "read_only"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"run option {name} must be True or False, got {getattr(self, name)!r}")
        if self.writes is not None and self.writes not in _POLICIES:
            raise ValueError(f"run option writes must be 'allow', 'ask', 'deny' or None, got {self.writes!r}")
        if self.approve is not None and not callable(self.approve):
            raise TypeError(f"run option approve must be a callable taking a WriteRequest and returning True "
                            f"to allow the write, got {type(self.approve).__name__}")
        if self.idempotency_key is not None and (not isinstance(self.idempotency_key, str) or not self.idempotency_key):
            raise ValueError(f"run option idempotency_key must be a non-empty string or None, got "
                             f"{self.idempotency_key!r}; pass None for a run without a key")

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with ``changes`` applied (checked like a new one); an unknown name raises ``TypeError``."""
        unknown = [name for name in changes if name not in _NAMES]
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], _NAMES, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise TypeError(f"unknown run option {unknown[0]!r}{hint} (the options are: {', '.join(_NAMES)})")
        return replace(self, **changes) if changes else self

    def over(self, defaults: RunOptions) -> RunOptions:
        """These options merged over ``defaults`` (the Runtime's): each one given here wins, except that a
        run is never less strict than its defaults (the stricter write policy; ``dry_run``/``read_only``
        if either)."""
        writes = _strictest(defaults.writes, self.writes) if (defaults.writes or self.writes) else None
        return RunOptions(
            limits=self.limits if self.limits is not None else defaults.limits,
            dry_run=self.dry_run or defaults.dry_run,
            read_only=self.read_only or defaults.read_only,
            writes=writes,
            approve=self.approve if self.approve is not None else defaults.approve,
            idempotency_key=self.idempotency_key if self.idempotency_key is not None else defaults.idempotency_key,
        )

    @property
    def write_policy(self) -> WritePolicy:
        """The run's own write policy: ``deny`` when read-only, else ``writes`` (default ``allow``)."""
        return _strictest(self.writes, "deny" if self.read_only else None)

    @property
    def may_write(self) -> bool:
        """Whether a write can reach a service under these options (the account's policy still applies)."""
        return not self.dry_run and self.write_policy != "deny"

    def for_worker(self) -> RunOptions:
        """The picklable part, for a worker process: without the approver (the parent answers its questions)."""
        return self if self.approve is None else replace(self, approve=None)


_NAMES = tuple(field.name for field in fields(RunOptions))


def _strictest(*policies: WritePolicy | None) -> WritePolicy:
    from ._policy import strictest  # a run that writes nothing never imports the policy layer

    return strictest(*policies)
