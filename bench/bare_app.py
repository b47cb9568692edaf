"""The baseline HTTP endpoint: intake's request model and validation, no Kafka, no MongoDB.

`uvicorn bench.bare_app:app` with the services' own server settings; the ratio of
intake to this shows what durability (a database write and an acks=all publish) costs.
"""

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from libs.ids import new_id
from services.intake.models import AppealIn

app = FastAPI(title="bare endpoint")


@app.post("/v1/appeals", status_code=202)
async def accept(body: AppealIn) -> JSONResponse:
    """Validate like intake and answer 202 without storing anything."""
    return JSONResponse({"appeal_id": new_id(), "status": "submitted"}, status_code=202)
