"""`python -m services.stats` serves; `python -m services.stats rebuild` replays the topics into fresh projections."""

import sys

from libs.app import run_service
from services.stats.app import create_app
from services.stats.settings import StatsSettings

if __name__ == "__main__":
    if sys.argv[1:2] == ["rebuild"]:
        from services.stats.rebuild import main

        main(sys.argv[2:])
    else:
        run_service(StatsSettings, create_app)
