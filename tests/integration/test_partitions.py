"""The partition count is a setting for new topics; a live topic keeps its own, and says so."""

import logging

import pytest

from libs.ids import new_id
from libs.kafka.topics import ensure_topics, partitions_setting
from libs.kafka_admin import partitions_of


def test_the_setting_comes_from_kafka_partitions(monkeypatch):
    monkeypatch.delenv("KAFKA_PARTITIONS", raising=False)
    assert partitions_setting() == 4
    monkeypatch.setenv("KAFKA_PARTITIONS", "12")
    assert partitions_setting() == 12
    for wrong in ("0", "twelve", "-3"):
        monkeypatch.setenv("KAFKA_PARTITIONS", wrong)
        with pytest.raises(ValueError, match="KAFKA_PARTITIONS"):
            partitions_setting()


async def test_new_topics_get_the_count_and_live_ones_keep_theirs(real_servers, caplog):
    topic = f"partitions-{new_id().lower()}"
    await ensure_topics(real_servers.bootstrap, [topic], partitions=6)
    assert len(await partitions_of(real_servers.bootstrap, [topic])) == 6
    with caplog.at_level(logging.WARNING, logger="libs.kafka"):
        await ensure_topics(real_servers.bootstrap, [topic], partitions=12)
    assert len(await partitions_of(real_servers.bootstrap, [topic])) == 6, "adding partitions moves appeals' keys"
    warned = [r for r in caplog.records if "keep the partitions" in r.getMessage()]
    assert warned and warned[0].topics == {topic: 6}
