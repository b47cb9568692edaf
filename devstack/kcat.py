"""kcat as a department's own client would run it: authenticated as a principal of the stack's Kafka.

Debian's kcat links librdkafka 2.0.2, whose SCRAM exchange Kafka 4.x refuses as invalid credentials
even with the right password (fixed in librdkafka 2.6.1). The confluent-kafka wheel the project pins
carries a current librdkafka with no other dependency, so kcat runs on that one, found through
LD_LIBRARY_PATH. A department's own machine would have a current kcat and need none of this.
"""

import json
import os
import shutil
import sys
from pathlib import Path

import confluent_kafka

from libs.kafka.access import KafkaAccess

# A folder holding only `librdkafka.so.1`, the wheel's library under the name kcat looks for.
LIBRARY_DIR = Path(os.environ.get("KCAT_LIBRARY_DIR", Path(__file__).resolve().parent.parent / ".kafka" / "kcat-lib"))


def library_dir() -> Path:
    """The folder of the librdkafka kcat runs on (made the first time)."""
    wheel_libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    found = sorted(wheel_libs.glob("librdkafka*.so*"))
    if not found:
        raise RuntimeError(f"no librdkafka in {wheel_libs}: reinstall confluent-kafka (pyproject.toml)")
    link = LIBRARY_DIR / "librdkafka.so.1"
    if not link.exists() or link.resolve() != found[0]:
        LIBRARY_DIR.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(found[0])
    return LIBRARY_DIR


def command(access: KafkaAccess, *args: str) -> tuple[list[str], dict[str, str]]:
    """The kcat command line for `access` with `args` after it, and the environment to run it in."""
    options = [part for key, value in access.librdkafka().items() for part in ("-X", f"{key}={value}")]
    env = {**os.environ, "LD_LIBRARY_PATH": str(library_dir())}
    return ["kcat", *options, *args], env


def main(argv: list[str], manifest: Path) -> None:
    """`python -m devstack kcat <principal> <kcat args>`: kcat as `admin` or `department:<code>` of the stack."""
    if not argv:
        raise SystemExit("usage: python -m devstack kcat <admin|department:<code>> <kcat arguments>")
    kafka = json.loads(manifest.read_text())["kafka"]
    principal, args = argv[0], argv[1:]
    access = KafkaAccess(kafka["bootstrap_servers"], kafka["security_protocol"])
    if "principals" in kafka:
        if principal not in kafka["principals"]:
            raise SystemExit(f"no Kafka principal {principal!r}; one of: {', '.join(kafka['principals'])}")
        user = kafka["principals"][principal]
        access = KafkaAccess(
            kafka["bootstrap_servers"],
            kafka["security_protocol"],
            kafka["sasl_mechanism"],
            user["username"],
            user["password"],
        )
    if shutil.which("kcat") is None:
        raise SystemExit("kcat is not installed (Debian: apt-get install kcat)")
    line, env = command(access, *args)
    sys.stdout.flush()
    os.execvpe(line[0], line, env)
