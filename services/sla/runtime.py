"""What sla's handlers, views and jobs share in one process: settings, the SLA book, metrics."""

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from libs.app import Runtime, get_runtime
from services.sla.metrics import SlaMetrics
from services.sla.service import SlaBook
from services.sla.settings import SlaSettings


@dataclass
class SlaRuntime(Runtime[SlaSettings]):
    book: SlaBook = field(kw_only=True)
    metrics: SlaMetrics = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.metrics = SlaMetrics.register(self.registry)


SlaRuntimeDep = Annotated[SlaRuntime, Depends(get_runtime)]
