"""The embedded servers' ports (devstack/servers.py): free, distinct, and out of the outgoing connections' way."""

import socket

from devstack import servers


def test_the_stack_takes_free_ports_that_no_outgoing_connection_can_be_given():
    ephemeral = servers._ephemeral_ports()
    ports = servers.free_ports(40)
    assert len(set(ports)) == 40
    assert not set(ports) & set(ephemeral), "the system hands these to outgoing connections"
    first = servers.free_port_run(4)
    assert first + 3 < ephemeral.start
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports[0]))
        taken.listen()
        assert not servers._bindable(ports[0]), "a port something listens on is not free"
    assert servers._bindable(ports[0])
