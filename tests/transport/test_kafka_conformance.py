"""The transport conformance suite (rxstream.testing) against the real Kafka broker of the test session."""

from __future__ import annotations

import pytest

from rxstream.testing import TransportConformance


class TestKafkaConformance(TransportConformance):
    @pytest.fixture
    def transport_url(self, kafka_bootstrap: str) -> str:
        return f"kafka://{kafka_bootstrap}"
