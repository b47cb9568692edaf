"""Who may call router's HTTP surface: one annotated dependency per set of key scopes (libs/auth.py)."""

from typing import Annotated

from fastapi import Depends

from libs.auth import Principal, require

AnyCaller = Annotated[Principal, Depends(require("department", "operator", "admin", "channel"))]  # not a liaison's
OperatorCaller = Annotated[Principal, Depends(require("operator", "admin"))]  # an operator's or an admin's key
StaffOrOperator = Annotated[Principal, Depends(require("department", "operator", "admin"))]
AdminCaller = Annotated[Principal, Depends(require("admin"))]  # an admin's key
RegistryReader = Annotated[Principal, Depends(require("operator", "admin", "liaison"))]  # and a liaison's own
