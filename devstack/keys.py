"""Demo API keys for the embedded stack: one per channel, department, operator and admin."""

import json
from collections.abc import Iterable
from pathlib import Path

from libs.auth import hash_key, new_key
from libs.config import City
from libs.kinds import Channel


def provision(city: City, data_dir: Path, liaisons: Iterable[str] = ()) -> dict[str, str]:
    """Return `{scope: key}`, reusing keys from an earlier run; writes the hashed key file services read.

    One key per channel, department and liaison (ids of config/registry.yaml), and one operator and one admin key.
    """
    plain_file = data_dir / "demo-keys.json"
    keys: dict[str, str] = json.loads(plain_file.read_text()) if plain_file.exists() else {}
    scopes = (
        [f"channel:{c.value}" for c in Channel]
        + [f"department:{d.code}" for d in city.departments]
        + [f"liaison:{liaison}" for liaison in liaisons]
        + ["operator", "admin"]
    )
    for scope in scopes:
        keys.setdefault(scope, new_key())
    keys = {scope: keys[scope] for scope in scopes}
    data_dir.mkdir(parents=True, exist_ok=True)
    plain_file.write_text(json.dumps(keys, indent=2))
    plain_file.chmod(0o600)
    hashed = [{"scope": scope, "sha256": hash_key(key), "label": f"demo {scope}"} for scope, key in keys.items()]
    (data_dir / "api-keys.json").write_text(json.dumps(hashed, indent=2))
    return keys
