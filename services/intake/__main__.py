"""`python -m services.intake` serves; `python -m services.intake adopt-submitted` moves appeals.submitted.v1 (as
Kafka's admin: KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL, KAFKA_ADMIN_USERNAME, KAFKA_ADMIN_PASSWORD)."""

import asyncio
import sys

from libs.app import run_service
from services.intake.app import create_app
from services.intake.settings import IntakeSettings

if __name__ == "__main__":
    if sys.argv[1:2] == ["adopt-submitted"]:
        from libs.kafka_admin import admin_access_from_env
        from services.intake.adopt import adopt_submitted

        print(f"{asyncio.run(adopt_submitted(admin_access_from_env()))} submissions moved")
    else:
        run_service(IntakeSettings, create_app)
