"""Who may call router's HTTP surface: one annotated dependency per set of key scopes (libs/auth.py)."""

from typing import Annotated

from fastapi import Depends, HTTPException

from libs.auth import Principal, require

AnyCaller = Annotated[Principal, Depends(require("department", "operator", "admin", "channel"))]  # not a liaison's
OperatorCaller = Annotated[Principal, Depends(require("operator", "admin"))]  # an operator's or an admin's key
StaffOrOperator = Annotated[Principal, Depends(require("department", "operator", "admin"))]
AdminCaller = Annotated[Principal, Depends(require("admin"))]  # an admin's key
RegistryReader = Annotated[Principal, Depends(require("operator", "admin", "liaison"))]  # and a liaison's own


def office_or_operator(principal: Principal, office: str, what: str) -> None:
    """Refuse (403) a department's key other than the coordinating office's: `what` is the office's and operators'."""
    if principal.kind == "department" and principal.name != office:
        raise HTTPException(403, f"{what} the coordinating office's and the operators'")
