"""The transport conformance suite (rxstream.testing) against the real Kafka broker of the test session."""

from __future__ import annotations

import pytest

from rxstream.testing import TransportConformance
from rxstream.transport import Transport, get_transport


class TestKafkaConformance(TransportConformance):
    @pytest.fixture
    def transport_url(self, kafka_bootstrap: str) -> str:
        return f"kafka://{kafka_bootstrap}"

    def make_committed_transport(self, url: str) -> Transport:
        return get_transport(url, consumer_config={"isolation_level": "read_committed"})
