"""What intake's handlers, views and jobs share in one process: settings, the city, the catalogue, the inserts."""

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends
from prometheus_client import Counter

from libs.app import Runtime, get_runtime
from libs.config import Catalogue, City, RegistryConfig
from libs.kafka.access import KafkaAccess
from libs.mongo import GroupedInserts
from services.intake import privacy, service
from services.intake.settings import IntakeSettings


@dataclass
class IntakeRuntime(Runtime[IntakeSettings]):
    city: City = field(kw_only=True)
    catalogue: Catalogue = field(kw_only=True)
    registry_config: RegistryConfig = field(kw_only=True)  # the lists and liaisons
    inserts: GroupedInserts = field(init=False)  # opened when the service starts, on its database
    backlogs: dict[str, service.Backlog] = field(default_factory=dict)  # per watched group, measured by a job
    shed: Counter = field(init=False)
    eraser: privacy.Eraser = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.eraser = privacy.Eraser(self.broker, KafkaAccess.of(self.settings).client_options())
        self.closing.append(self.eraser.close)
        self.shed = Counter(
            "appeals_shed", "Submissions answered 503 because the platform was too far behind", registry=self.registry
        )

    def follow_link(self, appeal_id: str, version: int = 0) -> str | None:
        """The company's page of an appeal with its token at `version` (web), as the messages link it."""
        settings = self.settings
        return service.follow_link(settings.follow_url, settings.status_token_secret, appeal_id, version=version)

    def shed_wait(self) -> tuple[int, str] | None:
        """While a watched group is too far behind: the seconds a channel should wait, and why (counted)."""
        settings = self.settings
        shed = service.longest_wait(self.backlogs, settings.shed_backlog_records, settings.retry_after_seconds)
        if shed is None:
            return None
        self.shed.inc()
        wait, group = shed
        return wait, service.busy_detail(group, self.backlogs[group].records)


IntakeRuntimeDep = Annotated[IntakeRuntime, Depends(get_runtime)]
