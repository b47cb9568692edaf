"""`python -m services.router`"""

from libs.app import run_service
from services.router.app import create_app
from services.router.settings import RouterSettings

if __name__ == "__main__":
    run_service(RouterSettings, create_app)
