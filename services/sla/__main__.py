"""`python -m services.sla`"""

from libs.app import run_service
from services.sla.app import create_app
from services.sla.settings import SlaSettings

if __name__ == "__main__":
    run_service(SlaSettings, create_app)
