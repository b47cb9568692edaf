"""What notify's handlers, views and jobs share in one process: settings, the book, metrics, what it remembers."""

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated

from fastapi import Depends

from libs.app import Runtime, get_runtime
from services.notify.book import Memory, NotifyBook
from services.notify.channels import Senders
from services.notify.metrics import NotifyMetrics
from services.notify.notices import Ready
from services.notify.settings import NotifySettings


@dataclass
class NotifyRuntime(Runtime[NotifySettings]):
    book: NotifyBook = field(kw_only=True)
    memory: Memory = field(default_factory=Memory)
    ready: Ready = field(init=False)
    metrics: NotifyMetrics = field(init=False)
    senders: Senders = field(init=False)  # opened when the service starts

    def __post_init__(self) -> None:
        super().__post_init__()
        self.metrics = NotifyMetrics.register(self.registry)
        self.ready = Ready(timedelta(seconds=self.settings.claim_seconds))


NotifyRuntimeDep = Annotated[NotifyRuntime, Depends(get_runtime)]
