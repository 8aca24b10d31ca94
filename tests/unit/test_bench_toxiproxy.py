"""The Toxiproxy client builds the API's requests right and stays on 127.0.0.0/8 (no network)."""

import json

import pytest

from devtools import toxiproxy
from devtools.toxiproxy import ToxiproxyClient, ToxiproxyError


class _Recorder:
    """A transport that records requests and answers from a queue."""

    def __init__(self, *answers: tuple[int, bytes]) -> None:
        self.answers = list(answers)
        self.requests = []

    def __call__(self, request, timeout_s):
        self.requests.append(request)
        return self.answers.pop(0) if self.answers else (204, b"")


def _body(request) -> dict:
    return json.loads(request.data)


def test_the_server_is_pinned_and_built_into_the_project_cache():
    assert toxiproxy.VERSION.startswith("v2.")
    assert toxiproxy.VERSION in str(toxiproxy.SERVER_BINARY)
    assert ".cache" in toxiproxy.SERVER_BINARY.parts


@pytest.mark.parametrize("address", ["127.0.0.1:9042", "127.0.0.4:0", "127.255.255.254:65535"])
def test_loopback_addresses_are_accepted(address):
    assert toxiproxy.loopback_address(address) == address


@pytest.mark.parametrize(
    "address",
    ["10.0.0.1:9042", "0.0.0.0:9042", "192.168.1.2:80", "localhost:9042", "[::1]:9042",
     "127.0.0.1", "127.0.0.1:99999", "example.com:80"],
)  # fmt: skip
def test_other_addresses_are_refused(address):
    with pytest.raises(ValueError):
        toxiproxy.loopback_address(address)


def test_the_client_itself_only_talks_to_loopback():
    with pytest.raises(ValueError):
        ToxiproxyClient("10.1.2.3", 8474)
    assert ToxiproxyClient().base_url == "http://127.0.0.1:8474"


def test_create_proxy_posts_its_addresses():
    answer = {
        "name": "c",
        "listen": "127.0.0.1:41000",
        "upstream": "127.0.0.1:9042",
        "enabled": True,
    }
    transport = _Recorder((201, json.dumps(answer).encode()))
    client = ToxiproxyClient(transport=transport)
    proxy = client.create_proxy("c", listen="127.0.0.1:0", upstream="127.0.0.1:9042")
    (request,) = transport.requests
    assert (request.get_method(), request.full_url) == ("POST", "http://127.0.0.1:8474/proxies")
    assert request.get_header("Content-type") == "application/json"
    assert _body(request) == {
        "name": "c", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9042", "enabled": True
    }  # fmt: skip
    assert proxy == toxiproxy.Proxy("c", "127.0.0.1:41000", "127.0.0.1:9042")
    assert proxy.port == 41000


def test_a_proxy_to_another_host_is_refused_before_any_request():
    transport = _Recorder()
    client = ToxiproxyClient(transport=transport)
    with pytest.raises(ValueError, match="loopback"):
        client.create_proxy("c", listen="127.0.0.1:0", upstream="10.0.0.5:9042")
    assert transport.requests == []


def test_latency_is_added_on_both_streams():
    transport = _Recorder((200, b"{}"), (200, b"{}"))
    ToxiproxyClient(transport=transport).add_latency("cassandra", 1, jitter_ms=2)
    assert [r.full_url for r in transport.requests] == [
        "http://127.0.0.1:8474/proxies/cassandra/toxics"
    ] * 2
    assert [_body(r) for r in transport.requests] == [
        {"name": "latency_upstream", "type": "latency", "stream": "upstream", "toxicity": 1.0,
         "attributes": {"latency": 1, "jitter": 2}},
        {"name": "latency_downstream", "type": "latency", "stream": "downstream", "toxicity": 1.0,
         "attributes": {"latency": 1, "jitter": 2}},
    ]  # fmt: skip


def test_the_other_toxics_carry_their_attributes():
    assert toxiproxy.bandwidth(64)["attributes"] == {"rate": 64}
    assert toxiproxy.timeout(500, stream="upstream") == {
        "name": "timeout_upstream", "type": "timeout", "stream": "upstream", "toxicity": 1.0,
        "attributes": {"timeout": 500},
    }  # fmt: skip
    reset = toxiproxy.reset_peer(name="rst", toxicity=0.5)
    assert (reset["name"], reset["type"], reset["toxicity"]) == ("rst", "reset_peer", 0.5)
    assert reset["attributes"] == {"timeout": 0}


@pytest.mark.parametrize(
    "make",
    [
        lambda: toxiproxy.latency(5, stream="sideways"),
        lambda: toxiproxy.latency(-1),
        lambda: toxiproxy.bandwidth(10, toxicity=1.5),
    ],
)
def test_impossible_toxics_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_removing_and_deleting_use_delete_on_the_named_resource():
    transport = _Recorder()
    client = ToxiproxyClient(transport=transport)
    client.remove_toxic("pubsub", "latency_upstream")
    client.delete_proxy("pubsub")
    client.reset()
    assert [(r.get_method(), r.full_url, r.data) for r in transport.requests] == [
        ("DELETE", "http://127.0.0.1:8474/proxies/pubsub/toxics/latency_upstream", None),
        ("DELETE", "http://127.0.0.1:8474/proxies/pubsub", None),
        ("POST", "http://127.0.0.1:8474/reset", None),
    ]
    with pytest.raises(ValueError):
        client.delete_proxy("../reset")


def test_a_refusal_raises_with_the_servers_message_and_status():
    transport = _Recorder((409, b'{"error":"proxy already exists","status":409}'))
    client = ToxiproxyClient(transport=transport)
    with pytest.raises(ToxiproxyError, match="proxy already exists") as caught:
        client.create_proxy("c", listen="127.0.0.1:0", upstream="127.0.0.1:9042")
    assert caught.value.status == 409


def test_traffic_is_read_from_the_proxy_metrics():
    metrics = """# TYPE toxiproxy_proxy_received_bytes_total counter
toxiproxy_proxy_received_bytes_total{direction="downstream",listener="127.0.0.1:1",proxy="c",upstream="127.0.0.1:9042"} 121123
toxiproxy_proxy_received_bytes_total{direction="upstream",listener="127.0.0.1:1",proxy="c",upstream="127.0.0.1:9042"} 9446
toxiproxy_proxy_sent_bytes_total{direction="upstream",listener="127.0.0.1:1",proxy="c",upstream="127.0.0.1:9042"} 1
toxiproxy_proxy_received_bytes_total{direction="upstream",listener="127.0.0.1:2",proxy="p",upstream="127.0.0.1:8085"} 1.5e+06
"""  # noqa: E501
    transport = _Recorder((200, metrics.encode()))
    traffic = ToxiproxyClient(transport=transport).traffic()
    assert transport.requests[0].full_url == "http://127.0.0.1:8474/metrics"
    assert traffic == {
        "c": toxiproxy.Traffic(upstream=9446, downstream=121123),
        "p": toxiproxy.Traffic(upstream=1_500_000, downstream=0),
    }
    assert traffic["c"].total == 130569
