"""`python -m libs.kafka`: the cluster's administration (topics, principals, redrive), its documented name."""

from libs.kafka_admin import main

main()
