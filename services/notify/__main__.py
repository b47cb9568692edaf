"""`python -m services.notify`"""

from libs.app import run_service
from services.notify.app import create_app
from services.notify.settings import NotifySettings

if __name__ == "__main__":
    run_service(NotifySettings, create_app)
