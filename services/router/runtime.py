"""What router's handlers, views and jobs share in one process: settings and the routing book."""

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from libs.app import Runtime, get_runtime
from services.router.rules import RoutingBook
from services.router.settings import RouterSettings


@dataclass
class RouterRuntime(Runtime[RouterSettings]):
    book: RoutingBook = field(kw_only=True)


RouterRuntimeDep = Annotated[RouterRuntime, Depends(get_runtime)]
