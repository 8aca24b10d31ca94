"""What a Cassandra error means for a message: the values' fault (dead letter), or an outage or
a set-up problem (retry until it is over)."""

import pytest
from cassandra import InvalidRequest, OperationTimedOut, ReadTimeout, Unavailable
from cassandra.cluster import NoHostAvailable

from ecom_pipeline.cassandra_session import MappedAddresses, is_refusal, is_schema_fault

SCHEMA_FAULTS = [
    InvalidRequest('Error from server: code=2200 [Invalid query] message="table t does not exist"'),
    InvalidRequest("Keyspace 'ecom_store' does not exist"),
    InvalidRequest("unconfigured table orders_payments_facts"),
    InvalidRequest("Undefined column name payment_note"),
    InvalidRequest("UNDEFINED COLUMN NAME payment_note"),
    InvalidRequest("Unknown identifier payment_note"),
]
REFUSALS = [
    InvalidRequest("Invalid UTF-8 bytes 80"),
    InvalidRequest("Batch too large"),
    TypeError("Received an argument of invalid type for column quantity"),
    ValueError("Value 2**64 is too large for bigint"),
]
OUTAGES = [
    Unavailable("Cannot achieve consistency level LOCAL_QUORUM"),
    ReadTimeout("Operation timed out - received only 0 responses"),
    OperationTimedOut("errors={}, last_host=127.0.0.1"),
    NoHostAvailable("Unable to connect to any servers", {}),
    ConnectionResetError("the table does not exist"),
]


@pytest.mark.parametrize("error", SCHEMA_FAULTS)
def test_a_missing_keyspace_table_or_column_is_a_set_up_problem_not_a_refusal(error):
    assert is_schema_fault(error)
    assert not is_refusal(error)


@pytest.mark.parametrize("error", REFUSALS)
def test_values_cassandra_or_the_driver_refuse_are_the_messages_fault(error):
    assert is_refusal(error)
    assert not is_schema_fault(error)


@pytest.mark.parametrize("error", OUTAGES)
def test_outages_are_neither_refusals_nor_schema_faults(error):
    assert not is_refusal(error)
    assert not is_schema_fault(error)


def test_the_driver_reaches_mapped_nodes_at_their_mapped_address_and_others_as_reported():
    addresses = MappedAddresses((("127.0.0.2", "127.0.1.2"), ("10.0.0.5", "203.0.113.5")))
    assert addresses.translate("127.0.0.2") == "127.0.1.2"
    assert addresses.translate("10.0.0.5") == "203.0.113.5"
    assert addresses.translate("127.0.0.3") == "127.0.0.3"
