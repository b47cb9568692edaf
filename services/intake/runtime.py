"""What intake's handlers, views and jobs share in one process: settings, the city, the catalogue, the inserts."""

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from libs.app import Runtime, get_runtime
from libs.config import Catalogue, City, RegistryConfig
from libs.mongo import GroupedInserts
from services.intake import service
from services.intake.settings import IntakeSettings


@dataclass
class IntakeRuntime(Runtime[IntakeSettings]):
    city: City = field(kw_only=True)
    catalogue: Catalogue = field(kw_only=True)
    registry_config: RegistryConfig = field(kw_only=True)  # the lists and liaisons
    inserts: GroupedInserts = field(init=False)  # opened when the service starts, on its database

    def follow_link(self, appeal_id: str) -> str | None:
        """The company's page of an appeal with its token (web), as the messages link it."""
        return service.follow_link(self.settings.follow_url, self.settings.status_token_secret, appeal_id)


IntakeRuntimeDep = Annotated[IntakeRuntime, Depends(get_runtime)]
