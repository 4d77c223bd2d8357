"""Test-session wiring: the real Kafka broker fixture lives in tests/kafka_broker.py."""

pytest_plugins = ["tests.kafka_broker"]
