"""`python -m services.intake`"""

from libs.app import run_service
from services.intake.app import create_app
from services.intake.settings import IntakeSettings

if __name__ == "__main__":
    run_service(IntakeSettings, create_app)
