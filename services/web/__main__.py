"""`python -m services.web` serves the company portal and the department workbench."""

from libs.app import run_service
from services.web.app import create_app
from services.web.settings import WebSettings

if __name__ == "__main__":
    run_service(WebSettings, create_app)
