"""Kafka wiring, by job: `access` (where Kafka is and who a client is), `publishing` (CloudEvents out),
`consuming` (subscriptions that retry, wait out outages and dead-letter bad input), `broker` (a service's broker:
built, its publishers declared, its consumers' lag measured). `python -m libs.kafka` is the cluster's
administration (libs/kafka_admin.py).

The read-ahead default below is set here, not in `consuming`, because it is process-wide: every aiokafka consumer
of a process that imports any of these modules gets it, the administration's (redrive) as before the split.
"""

from aiokafka.consumer import fetcher as aiokafka_fetcher

# aiokafka asks for a partition's next records only once the handler has taken those it holds, but after this
# long (its default: 0.1 s) it asks for the consumer's other partitions alone. That request waits at the broker
# up to fetch_max_wait_ms (0.5 s) while they are quiet, and the busy partition's next records wait behind it:
# with two processes of every service at 10 appeals/s, 1 % of appeals were routed half a second late (p99
# 511 ms; 149 ms with this, docs/benchmarks.md). A consumer handles one batch at a time, so reading ahead of it
# gains nothing.
# AIOKafkaConsumer does not pass the option on to its fetcher, hence its default here.
PREFETCH_BACKOFF_SECONDS = 30.0
aiokafka_fetcher.Fetcher.__init__.__kwdefaults__["prefetch_backoff"] = PREFETCH_BACKOFF_SECONDS
