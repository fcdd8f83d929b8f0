"""Fixtures for the localization tests (helpers live in localize_helpers.py)."""

from __future__ import annotations

import pytest

from localize_helpers import culprit_network, culprit_property
from verirepair.network.model import Network
from verirepair.properties.property import Property


@pytest.fixture
def culprit() -> tuple[Network, list[Property]]:
    """The culprit network and its property."""
    return culprit_network(), [culprit_property()]
