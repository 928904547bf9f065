"""What every data-source port shares: the unavailable error and the ports bundle."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sre_graph.models import utcnow

if TYPE_CHECKING:
    from sre_graph.tools.kubernetes import KubernetesPort
    from sre_graph.tools.mongodb import MongoPort
    from sre_graph.tools.signoz import SignozPort


class SourceUnavailable(Exception):
    """A data source cannot answer: down, unreachable, unauthorised or not configured."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source} unavailable: {reason}")
        self.source = source
        self.reason = reason


@dataclass
class Sources:
    """The data-source ports one investigation uses, and its clock."""

    kubernetes: KubernetesPort | None = None
    signoz: SignozPort | None = None
    mongodb: MongoPort | None = None
    clock: datetime | None = None
    """The investigation's notion of now: the incident's ``now`` on replay, wall time live."""
    unavailable: dict[str, str] = field(default_factory=dict)
    """Sources that could not be set up, with the reason."""
    answers: dict[str, tuple[Any, str | None]] = field(default_factory=dict, repr=False)
    """Answers already fetched in this run, by query (with the failure reason, if the source failed): the parallel
    investigators and later rounds ask the same questions, and a live source is asked each one once."""

    def now(self) -> datetime:
        """The replay clock, or the wall clock when live."""
        return self.clock or utcnow()
